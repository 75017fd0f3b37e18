package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// runJSON runs `arbiter-load sub args...` and decodes the JSON it wrote to -json.
func runJSON(t *testing.T, out any, sub string, args ...string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	argv := append([]string{"arbiter-load", sub}, append(args, "-json", path)...)
	if err := run(context.Background(), argv, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("%v: %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%v: JSON: %v", args, err)
	}
}

// TestBenchHelpers runs what deploy/bench/run.sh runs besides the
// scenarios, small, against a real arbiter and Redis: the figures must be
// there and make sense, whatever the store's scripts are.
func TestBenchHelpers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench helpers against a real arbiter and Redis")
	}
	srv := redistest.MustStartRedis(t)
	// Holds of 5 minutes, not the scenarios' 1 s: cost places a batch of
	// holds and then redeems it, which a loaded run (-race, a shared
	// machine) can stretch past a second, so that redemptions met expired
	// holds (410) in CI.
	base := startArbiterWith(t, srv.URL(), strings.ReplaceAll(smokePolicy, "hold_ttl: 1s", "hold_ttl: 5m"))
	common := []string{"-base-url", base, "-redis-url", srv.URL(),
		"-checker-key", smokeKeys.Checker, "-card-key", smokeKeys.Card, "-loan-key", smokeKeys.Loan}

	t.Run("cost", func(t *testing.T) {
		var rep costReport
		// The test process stands in for arbiter's pid: what is checked is
		// that the CPU is read, not how much.
		runJSON(t, &rep, "cost", append(common, "-requests", "300", "-concurrency", "4", "-pid", strconv.Itoa(os.Getpid()))...)
		want := []string{"minimal", "ping", "check", "refusal", "redeem_token", "redeem_otp"}
		if got := len(rep.Ops); got != len(want) {
			t.Fatalf("ops = %d, want %d", got, len(want))
		}
		for k, op := range rep.Ops {
			if op.Op != want[k] {
				t.Fatalf("op %d = %q, want %q", k, op.Op, want[k])
			}
			if op.Unexpected != 0 {
				t.Errorf("%s: %d unexpected answers %v", op.Op, op.Unexpected, op.Statuses)
			}
			if op.Op == "ping" {
				if op.Calls != 0 {
					t.Errorf("ping made %d script calls, want 0", op.Calls)
				}
				continue
			}
			// Every request is one script call, found under MONITOR.
			if op.Calls != op.Requests || op.UsecPerCall <= 0 || op.SHA == "" || len(op.Commands) == 0 {
				t.Errorf("%s: calls %d for %d requests, %.1f us/call, sha %q, commands %v", op.Op, op.Calls, op.Requests, op.UsecPerCall, op.SHA, op.Commands)
			}
		}
		if got, want := rep.Ops[0].SHA, rep.MinimalSHA; got != want {
			t.Errorf("minimal's SHA under MONITOR = %q, want the loaded %q", got, want)
		}
		if got, want := len(rep.Ops[0].Commands), 2; got != want {
			t.Errorf("minimal script ran %d commands %v, want %d (INCR, SET)", got, rep.Ops[0].Commands, want)
		}
	})

	t.Run("footprint", func(t *testing.T) {
		var rep []customerCost
		runJSON(t, &rep, "footprint", common...)
		if got, want := len(rep), 2; got != want {
			t.Fatalf("scenarios = %d, want %d", got, want)
		}
		for _, c := range rep {
			if c.Bytes <= 0 || len(c.Keys) == 0 || c.Forever > c.Bytes {
				t.Errorf("%s: %d bytes in %d keys, %d without TTL", c.Scenario, c.Bytes, len(c.Keys), c.Forever)
			}
		}
	})

	t.Run("closed", func(t *testing.T) {
		for _, args := range [][]string{{"-op", "check"}, {"-op", "redeem", "-setup", "100"}, {"-op", "ping"}} {
			var rep closedReport
			runJSON(t, &rep, "closed", append(append(common, "-concurrency", "4", "-duration", "1s"), args...)...)
			if rep.Rate <= 0 || rep.Endpoint.Failed != 0 || rep.Endpoint.Errors != 0 {
				t.Errorf("closed %v: %.0f/s, statuses %v, %d transport errors", args, rep.Rate, rep.Endpoint.Statuses, rep.Endpoint.Errors)
			}
		}
	})
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{9, 1, 5}, 5}, {[]float64{40, 10, 30, 20}, 25}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
