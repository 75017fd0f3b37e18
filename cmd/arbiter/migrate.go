package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// migrate rewrites the values earlier releases wrote in the encodings this
// release reads (redisstore.Store.Migrate). It connects as the service
// does, from the same environment (ARBITER_REDIS_URL and the other Redis
// settings), and prints one JSON line per SCAN batch (node, cursor, counts
// so far) and a last one with done true. It keeps no state: a run that
// stopped is resumed by running it again, which skips, at the cost of its
// reads, every customer already converted.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := commandFlags("migrate", stderr)
	dry := fs.Bool("dry-run", false, "count the values in retired encodings; change nothing")
	batch := fs.Int64("batch", 1000, "keys asked of each SCAN call (its COUNT)")
	if err := parseCommand(fs, args); err != nil {
		return err
	}
	cfg, err := parseConfig(nil, getenv, stderr)
	if err != nil {
		return err
	}
	if !cfg.production() {
		return errors.New("migrate: ARBITER_REDIS_URL is not set (an embedded Redis starts empty: nothing to migrate)")
	}
	if err := cfg.checkAudit(); err != nil { // the same bounds as serving: the store takes them
		return fmt.Errorf("migrate: %w", err)
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	redisstore.SetLogger(log)
	rdb, closeRedis, err := openRedis(cfg, log, func(string, func() *x509.Certificate) {})
	if err != nil {
		return err
	}
	defer closeRedis()
	out := json.NewEncoder(stdout)
	opts := storeOptions(cfg)
	opts.CompactGrants = cfg.CompactGrants == "on" // off: whole grants stay whole
	rep, err := redisstore.New(rdb, opts).Migrate(ctx, redisstore.MigrateOptions{DryRun: *dry, Batch: *batch,
		Progress: func(p redisstore.MigrateProgress) { _ = out.Encode(p) }})
	if err != nil {
		return fmt.Errorf("migrate: %w (running it again resumes)", err)
	}
	return out.Encode(struct {
		Done   bool  `json:"done"`
		DryRun bool  `json:"dry_run"`
		Total  int64 `json:"total"`
		redisstore.MigrateReport
	}{true, *dry, rep.Total(), rep})
}
