package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/load"
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The keys of the clients file the smoke arbiter runs with (production
// mode has no demo keys).
var smokeKeys = load.Keys{Checker: "smoke-checker-key-0001", Card: "smoke-card-key-000001", Loan: "smoke-loan-key-000001"}

const smokeClients = `clients:
  - {id: branch-portal, key: smoke-checker-key-0001, roles: [checker]}
  - {id: card-service, key: smoke-card-key-000001, roles: [checker, redeemer]}
  - {id: loan-service, key: smoke-loan-key-000001, roles: [checker, redeemer]}
`

// Holds of one second, so the soak sees expiries within a short run.
const smokePolicy = `products:
  credit_card: {hold_ttl: 1s, redeemers: [card-service]}
  personal_loan: {hold_ttl: 1s, redeemers: [loan-service]}
exclusive:
  - [credit_card, personal_loan]
`

// smokeSeconds is each scenario's duration: 4 s, or ARBITER_LOAD_SMOKE_SECONDS (CI: 10).
func smokeSeconds(tb testing.TB) time.Duration {
	tb.Helper()
	if v := os.Getenv("ARBITER_LOAD_SMOKE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			tb.Fatalf("ARBITER_LOAD_SMOKE_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n) * time.Second
	}
	return 4 * time.Second
}

// startArbiter builds ./cmd/arbiter (or takes the binary named by
// ARBITER_LOAD_ARBITER_BIN) and runs it in production mode on redisURL,
// with a clients file, a policy and a fresh signing key.
func startArbiter(tb testing.TB, redisURL string) string {
	tb.Helper()
	return startArbiterWith(tb, redisURL, smokePolicy)
}

// startArbiterWith is startArbiter under policy.
func startArbiterWith(tb testing.TB, redisURL, policy string) string {
	tb.Helper()
	dir := tb.TempDir()
	bin := os.Getenv("ARBITER_LOAD_ARBITER_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "arbiter")
		build := exec.Command("go", "build", "-o", bin, "github.com/arbiter-bank/arbiter/cmd/arbiter")
		if out, err := build.CombinedOutput(); err != nil {
			tb.Fatalf("go build ./cmd/arbiter: %v\n%s", err, out)
		}
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	pem, err := tokens.MarshalPrivateKeyPEM(key)
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string]string{"signing.pem": string(pem), "clients.yaml": smokeClients, "policy.yaml": policy}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	var logs bytes.Buffer
	p, err := load.Spawn(context.Background(), bin, []string{"-log-level", "warn"}, []string{
		"ARBITER_REDIS_URL=" + redisURL,
		"ARBITER_CLIENTS=" + filepath.Join(dir, "clients.yaml"),
		"ARBITER_SIGNING_KEY=" + filepath.Join(dir, "signing.pem"),
		"ARBITER_POLICY=" + filepath.Join(dir, "policy.yaml"),
	}, &logs)
	if err != nil {
		tb.Fatalf("start arbiter: %v\n%s", err, logs.String())
	}
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("arbiter logs:\n%s", logs.String())
		}
	})
	return p.Base
}

// runScenario runs `arbiter-load name args...` through run and returns its JSON report.
func runScenario(t *testing.T, base, redisURL, name string, args ...string) (load.Report, error) {
	t.Helper()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	argv := append([]string{"arbiter-load", name, "-base-url", base, "-redis-url", redisURL, "-json", jsonPath,
		"-checker-key", smokeKeys.Checker, "-card-key", smokeKeys.Card, "-loan-key", smokeKeys.Loan,
		"-duration", smokeSeconds(t).String(), "-quiet"}, args...)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), argv, func(string) string { return "" }, &stdout, &stderr)
	t.Logf("%s\n%s", stdout.String(), stderr.String())
	var rep load.Report
	data, rerr := os.ReadFile(jsonPath)
	if rerr != nil {
		t.Fatalf("no JSON report (run error: %v): %v", err, rerr)
	}
	if jerr := json.Unmarshal(data, &rep); jerr != nil {
		t.Fatalf("JSON report: %v", jerr)
	}
	return rep, err
}

func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke runs each scenario for seconds against a real arbiter and Redis")
	}
	srv := redistest.MustStartRedis(t)
	base := startArbiter(t, srv.URL())

	for _, tc := range []struct {
		name   string
		args   []string
		grants string // the counter that must be positive
	}{
		{"checks", []string{"-rate", "60"}, "grants"},
		{"checks", []string{"-rate", "60", "-refused", "0.5", "-customers", "50"}, "grants"},
		{"contention", []string{"-rate", "80", "-customers", "5"}, "grants"},
		{"soak", []string{"-rate", "60"}, "expiries_verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := runScenario(t, base, srv.URL(), tc.name, tc.args...)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if got := len(rep.Violations); got != 0 {
				t.Fatalf("violations = %d (%v), want 0", got, rep.Violations)
			}
			if got, want := rep.Failed, int64(0); got != want {
				t.Fatalf("failed requests = %d, want %d", got, want)
			}
			if got := rep.Counters[tc.grants]; got <= 0 {
				t.Fatalf("counter %s = %d, want > 0", tc.grants, got)
			}
			if rep.Redis == nil {
				t.Fatal("report has no redis section")
			}
			if got, want := rep.Redis.EvalFallbacks, int64(0); got != want {
				t.Fatalf("EVAL fallbacks = %d, want %d: scripts are loaded at start", got, want)
			}
			// Every API request is one EVALSHA or FCALL, no more, no fewer.
			if got, want := rep.Redis.ScriptCalls, rep.Redis.Requests; got != want || want != rep.Requests {
				t.Fatalf("script calls = %d, want one per request served (%d of %d)", got, want, rep.Requests)
			}
		})
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"arbiter-load"},
		{"arbiter-load", "nonsense"},
		{"arbiter-load", "checks", "-rate", "0"},
		{"arbiter-load", "checks", "-refused", "1.5"},
		{"arbiter-load", "storebench"},
		{"arbiter-load", "preload"},
		{"arbiter-load", "cost"},
		{"arbiter-load", "footprint"},
		{"arbiter-load", "footprint", "-redis-url", "redis://127.0.0.1:1", "-pattern", "arb:*"},
		{"arbiter-load", "plot"},
		{"arbiter-load", "plot", "-in", "internal/chart/testdata/sweep.csv"},
		{"arbiter-load", "storebench", "-redis-url", "redis://127.0.0.1:1", "-rates", "x"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &out); err == nil {
			t.Errorf("run(%q) = nil error, want one", args)
		}
	}
}

// TestClosedCosts runs the closed loop run.sh takes CPU per request from,
// against a real arbiter and Redis: every refusal is a 409 made of one
// script call, and both processes' CPU is read.
func TestClosedCosts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real arbiter and Redis")
	}
	srv := redistest.MustStartRedis(t)
	base := startArbiter(t, srv.URL())
	for _, op := range []string{"refusal", "check"} {
		t.Run(op, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "closed.json")
			var out bytes.Buffer
			err := run(context.Background(), []string{"arbiter-load", "closed", "-base-url", base, "-redis-url", srv.URL(),
				"-checker-key", smokeKeys.Checker, "-card-key", smokeKeys.Card, "-loan-key", smokeKeys.Loan,
				"-op", op, "-setup", "20", "-concurrency", "4", "-duration", "1s",
				"-pid", strconv.Itoa(os.Getpid()), "-json", path}, func(string) string { return "" }, &out, &out)
			if err != nil {
				t.Fatalf("closed: %v\n%s", err, out.String())
			}
			var rep closedReport
			readJSON(t, path, &rep)
			want := map[string]string{"refusal": "409", "check": "201"}[op]
			if n := rep.Endpoint.Count; n == 0 || rep.Endpoint.Statuses[want] != n {
				t.Fatalf("statuses %v of %d requests, want all %s", rep.Endpoint.Statuses, n, want)
			}
			if got, want := rep.ScriptCallsPerRequest, 1.0; got != want {
				t.Fatalf("script calls per request = %v, want %v", got, want)
			}
			if rep.Redis == nil || rep.Redis.Usec <= 0 || rep.ServerCPUUs <= 0 {
				t.Fatalf("redis %+v, server CPU %v µs/request: want both measured", rep.Redis, rep.ServerCPUUs)
			}
		})
	}
}
