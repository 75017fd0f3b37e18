package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestMigrateCommand: arbiter migrate finds Redis as the service does,
// counts without writing under -dry-run, converts (to whole grants, then,
// with ARBITER_COMPACT_GRANTS=on, to g1), and converts nothing the second
// time.
func TestMigrateCommand(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	const key, grant = "arb:{C-1}:grants", `{"check_id":"chk_1","product":"credit_card","fence":3,"granted":1700000000000,"by":"card-service"}`
	if err := rdb.HSet(ctx, key, "chk_1", grant).Err(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ARBITER_REDIS_URL": srv.URL()}
	migrate := func(args ...string) (last struct {
		Done  bool  `json:"done"`
		Total int64 `json:"total"`
	}) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"arbiter", "migrate"}, args...), func(k string) string { return env[k] },
			strings.NewReader(""), &stdout, &stderr)
		if err != nil {
			t.Fatalf("migrate %v: %v\n%s", args, err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || !last.Done {
			t.Fatalf("last line %q: %v; want done", lines[len(lines)-1], err)
		}
		return last
	}
	if got := migrate("-dry-run"); got.Total != 1 || rdb.HGet(ctx, key, "chk_1").Val() != grant {
		t.Fatalf("dry run: total %d, grant %q; want 1, unchanged", got.Total, rdb.HGet(ctx, key, "chk_1").Val())
	}
	// Compact grants off (the default): the grant becomes the whole check
	// the previous release reads.
	if got := migrate(); got.Total != 1 || !strings.HasPrefix(rdb.HGet(ctx, key, "chk_1").Val(), "c2\x1f") {
		t.Fatalf("migrate: total %d, grant %q; want 1, in c2", got.Total, rdb.HGet(ctx, key, "chk_1").Val())
	}
	if got := migrate(); got.Total != 0 {
		t.Fatalf("second run, compact grants off, converted %d; want 0", got.Total)
	}
	env["ARBITER_COMPACT_GRANTS"] = "on"
	if got := migrate(); got.Total != 1 || !strings.HasPrefix(rdb.HGet(ctx, key, "chk_1").Val(), "g1\x1f") {
		t.Fatalf("migrate, compact grants on: total %d, grant %q; want 1, in g1", got.Total, rdb.HGet(ctx, key, "chk_1").Val())
	}
	if got := migrate("-batch", "1"); got.Total != 0 {
		t.Fatalf("second run converted %d; want 0", got.Total)
	}
	t.Run("refuses a short audit without an archive", func(t *testing.T) {
		env := map[string]string{"ARBITER_REDIS_URL": srv.URL(), "ARBITER_AUDIT_RETENTION": "24h"}
		err := run(ctx, []string{"arbiter", "migrate"}, func(k string) string { return env[k] }, strings.NewReader(""),
			&bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "needs ARBITER_ARCHIVE_URL") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("refuses to run without Redis", func(t *testing.T) {
		env = map[string]string{}
		err := run(ctx, []string{"arbiter", "migrate"}, func(k string) string { return env[k] }, strings.NewReader(""),
			&bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "ARBITER_REDIS_URL") {
			t.Fatalf("err = %v", err)
		}
	})
}
