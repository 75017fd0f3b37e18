package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

func TestRedisTopology(t *testing.T) {
	tests := []struct {
		url, sentinel, want string
		addrs               []string
	}{
		{"redis://127.0.0.1:6379/0", "", "single", nil},
		{"rediss://user:pw@redis.bank:6380", "", "single", nil},
		{"redis://h1:7000?addr=h2:7001&addr=h3:7002", "", "cluster", []string{"h1:7000", "h2:7001", "h3:7002"}},
		{"h1:7000,h2:7001,h3:7002", "", "cluster", []string{"h1:7000", "h2:7001", "h3:7002"}},
		{"redis://u:p@h1:7000, redis://h2:7001", "", "cluster", []string{"h1:7000", "h2:7001"}},
		{"redis://s1:26379?addr=s2:26379", "mymaster", "sentinel", nil},
		// A comma in a password does not start another seed.
		{"redis://u:p,w@h1:7000/0", "", "single", nil},
		{"redis://u:p,w@h1:7000,h2:7001", "", "cluster", []string{"h1:7000", "h2:7001"}},
		{"redis://u:p,w@h1:7000,redis://u:p,w@h2:7001", "", "cluster", []string{"h1:7000", "h2:7001"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			if got := redisTopology(tt.url, tt.sentinel); got != tt.want {
				t.Fatalf("redisTopology = %s, want %s", got, tt.want)
			}
			if tt.want != "cluster" {
				return
			}
			opts, err := parseCluster(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprint(opts.Addrs), fmt.Sprint(tt.addrs); got != want {
				t.Fatalf("seeds = %s, want %s", got, want)
			}
		})
	}
	if _, err := parseCluster("h1:7000,h2"); err == nil {
		t.Fatal("a seed without a port was accepted")
	}
}

func TestWaitSettings(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string {
		return map[string]string{"ARBITER_REDIS_WAIT_REPLICAS": "1", "ARBITER_REDIS_WAIT_TIMEOUT": "250ms"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	opts := storeOptions(cfg)
	if opts.WaitReplicas != 1 || opts.WaitTimeout.String() != "250ms" {
		t.Fatalf("store options = %+v, want WAIT 1 for 250ms", opts)
	}
	for _, bad := range []string{"-1", "two"} {
		_, err := parseConfig(nil, func(k string) string {
			return map[string]string{"ARBITER_REDIS_WAIT_REPLICAS": bad}[k]
		}, io.Discard)
		if err == nil {
			t.Errorf("ARBITER_REDIS_WAIT_REPLICAS=%s was accepted", bad)
		}
	}
}

// TestLogIsJSONWithRedisDown: with Redis unreachable at start, go-redis's
// own complaint (its pool cannot dial) is a JSON record of arbiter's log,
// component go-redis, like every other line of stderr.
func TestLogIsJSONWithRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"ARBITER_REDIS_URL":   "redis://" + closed,
		"ARBITER_SIGNING_KEY": signingKeyFile(t),
		"ARBITER_CLIENTS":     writeFile(t, "clients.yaml", "clients:\n  - { id: ops, key: prod-admin-key-123456, roles: [admin] }\n"),
	}
	// It listens after its first attempt to load the scripts has failed,
	// so go-redis has logged by then.
	s := startRunWith(t, env, http.DefaultClient, false)
	var fromGoRedis bool
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		fromGoRedis = fromGoRedis || rec["component"] == "go-redis"
	}
	if !fromGoRedis {
		t.Fatalf("no record with component=go-redis in stderr:\n%s", s.stderr)
	}
}

// TestAuditSettings: the recent audit Redis keeps is the store's default
// unless set, shorter only with an archive (without one it is the only
// record), and never shorter than a day, the OTP window or the branch UI's
// page.
func TestAuditSettings(t *testing.T) {
	parse := func(env map[string]string) (config, error) {
		cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			return cfg, err
		}
		return cfg, cfg.check()
	}
	cfg, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts := storeOptions(cfg); opts.AuditCap != redisstore.DefaultAuditCap || opts.AuditRetention != redisstore.DefaultAuditRetention {
		t.Fatalf("default store options = %+v, want the store's defaults", opts)
	}
	archive := "postgres://127.0.0.1/archive"
	redisURL := "redis://127.0.0.1:1"
	cfg, err = parse(map[string]string{"ARBITER_REDIS_URL": redisURL, "ARBITER_ARCHIVE_URL": archive,
		"ARBITER_AUDIT_CAP": "20", "ARBITER_AUDIT_RETENTION": "24h", "ARBITER_CLIENTS": "c.yaml", "ARBITER_SIGNING_KEY": "k.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if opts := storeOptions(cfg); opts.AuditCap != 20 || opts.AuditRetention != 24*time.Hour {
		t.Fatalf("store options = %+v, want 20 events for 24h", opts)
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"ARBITER_AUDIT_RETENTION": "48h"}, "needs ARBITER_ARCHIVE_URL"},
		{map[string]string{"ARBITER_AUDIT_CAP": "50"}, "needs ARBITER_ARCHIVE_URL"},
		{map[string]string{"ARBITER_AUDIT_CAP": "19", "ARBITER_ARCHIVE_URL": archive}, "ARBITER_AUDIT_CAP must be"},
		{map[string]string{"ARBITER_AUDIT_CAP": "201"}, "ARBITER_AUDIT_CAP must be"},
		{map[string]string{"ARBITER_AUDIT_RETENTION": "23h", "ARBITER_ARCHIVE_URL": archive}, "ARBITER_AUDIT_RETENTION must be"},
		{map[string]string{"ARBITER_AUDIT_RETENTION": "24h", "ARBITER_OTP_FAILURE_WINDOW": "25h", "ARBITER_ARCHIVE_URL": archive}, "ARBITER_AUDIT_RETENTION must be"},
	} {
		env := map[string]string{"ARBITER_REDIS_URL": redisURL, "ARBITER_CLIENTS": "c.yaml", "ARBITER_SIGNING_KEY": "k.pem"}
		maps.Copy(env, tt.env)
		if _, err := parse(env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want it to say %q", tt.env, err, tt.want)
		}
	}
}
