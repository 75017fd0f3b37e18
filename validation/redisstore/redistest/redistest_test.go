package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMustStartRedis(t *testing.T) {
	s := MustStartRedis(t)
	c := s.Client(t)
	ctx := context.Background()

	t.Run("set and get", func(t *testing.T) {
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
		got, err := c.Get(ctx, "k").Result()
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		if want := "v"; got != want {
			t.Fatalf("GET k = %q, want %q", got, want)
		}
	})

	t.Run("url", func(t *testing.T) {
		if got, want := s.URL(), fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port); got != want {
			t.Fatalf("URL() = %q, want %q", got, want)
		}
		opt, err := redis.ParseURL(s.URL())
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", s.URL(), err)
		}
		if got, want := opt.Addr, s.Addr; got != want {
			t.Fatalf("ParseURL(URL()).Addr = %q, want %q", got, want)
		}
	})

	t.Run("no persistence in a temporary dir", func(t *testing.T) {
		cfg, err := c.ConfigGet(ctx, "*").Result()
		if err != nil {
			t.Fatalf("CONFIG GET: %v", err)
		}
		for key, want := range map[string]string{"save": "", "appendonly": "no", "dir": s.Dir, "bind": "127.0.0.1"} {
			if got := cfg[key]; got != want {
				t.Fatalf("CONFIG GET %s = %q, want %q", key, got, want)
			}
		}
	})

	t.Run("command stats count three gets", func(t *testing.T) {
		before := s.CommandStats(t)
		for range 3 {
			if err := c.Get(ctx, "k").Err(); err != nil {
				t.Fatalf("GET: %v", err)
			}
		}
		after := s.CommandStats(t)
		if got, want := after["get"]-before["get"], int64(3); got != want {
			t.Fatalf("get calls moved by %d, want %d (before %v, after %v)", got, want, before, after)
		}
		if got, want := after["set"]-before["set"], int64(0); got != want {
			t.Fatalf("set calls moved by %d, want %d", got, want)
		}
	})
}

func TestExtraArgsOverrideDefaults(t *testing.T) {
	s := MustStartRedis(t, "--maxmemory", "10mb", "--appendonly", "yes")
	cfg, err := s.Client(t).ConfigGet(context.Background(), "*").Result()
	if err != nil {
		t.Fatalf("CONFIG GET: %v", err)
	}
	if got, want := cfg["maxmemory"], "10485760"; got != want {
		t.Fatalf("maxmemory = %q, want %q", got, want)
	}
	if got, want := cfg["appendonly"], "yes"; got != want {
		t.Fatalf("appendonly = %q, want %q", got, want)
	}
}

func TestKillRestart(t *testing.T) {
	s := MustStartRedis(t)
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	addr, port, dir := s.Addr, s.Port, s.Dir

	s.Kill()
	if err := ping(s.Addr, nil, time.Second); err == nil {
		t.Fatalf("PING after Kill succeeded, want an error")
	}
	s.Kill() // killing a dead server is a no-op

	s.Restart(t)
	if got, want := s.Addr+" "+s.Dir, addr+" "+dir; got != want || s.Port != port {
		t.Fatalf("after Restart server at %s port %d, want %s port %d", got, s.Port, want, port)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	// Without persistence a crash loses everything.
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET k after Restart: err = %v, want redis.Nil", err)
	}

	s.Restart(t) // restarting a running server kills it first
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after second Restart: %v", err)
	}
}

func TestMustStartMiniredis(t *testing.T) {
	m := MustStartMiniredis(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 50*time.Millisecond).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, want := m.Exists("k"), true; got != want {
		t.Fatalf("Exists(k) = %v, want %v", got, want)
	}
	// ClockTTL: the key expires with the wall clock, no FastForward. Real
	// time passing is the subject here, so poll for it.
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, "k").Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("key with a 50ms TTL still exists after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_get:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_evalsha:calls=12,usec=400,usec_per_call=33.33,rejected_calls=1,failed_calls=2\r\n"
	got, err := parseCommandStats(info)
	if err != nil {
		t.Fatalf("parseCommandStats: %v", err)
	}
	want := map[string]int64{"get": 3, "client|setinfo": 2, "evalsha": 12}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parseCommandStats = %v, want %v", got, want)
	}
	if _, err := parseCommandStats("cmdstat_get:usec=1\r\n"); err == nil {
		t.Fatalf("parseCommandStats without calls: err = nil, want an error")
	}
}

func TestMissingRedisAction(t *testing.T) {
	for _, tc := range []struct {
		required  bool
		wantFatal bool
		wantInMsg string
	}{
		{required: true, wantFatal: true, wantInMsg: "redis-server not found and ARBITER_REQUIRE_REDIS is set: install it (apt-get install redis-server)"},
		{required: false, wantFatal: false, wantInMsg: "apt-get install redis-server"},
	} {
		fatal, msg := missingRedisAction(tc.required)
		if got, want := fatal, tc.wantFatal; got != want {
			t.Fatalf("missingRedisAction(%v) fatal = %v, want %v", tc.required, got, want)
		}
		if !strings.Contains(msg, tc.wantInMsg) {
			t.Fatalf("missingRedisAction(%v) msg = %q, want it to contain %q", tc.required, msg, tc.wantInMsg)
		}
	}
}

func TestMissingRedisServer(t *testing.T) {
	useCandidates(t, filepath.Join(t.TempDir(), "no-such-redis-server"))

	t.Run("skips when not required", func(t *testing.T) {
		t.Setenv(RequireRedisEnv, "")
		rec := runRecorded(t, func(tb testing.TB) { MustStartRedis(tb) })
		if got, want := rec.outcome, "skip"; got != want {
			t.Fatalf("outcome = %q (%s), want %q", got, rec.msg, want)
		}
		if !strings.Contains(rec.msg, "apt-get install redis-server") {
			t.Fatalf("skip message %q does not say how to install redis-server", rec.msg)
		}
	})

	t.Run("fails when required", func(t *testing.T) {
		t.Setenv(RequireRedisEnv, "1")
		rec := runRecorded(t, func(tb testing.TB) { MustStartRedis(tb) })
		if got, want := rec.outcome, "fatal"; got != want {
			t.Fatalf("outcome = %q (%s), want %q", got, rec.msg, want)
		}
		if !strings.Contains(rec.msg, "ARBITER_REQUIRE_REDIS is set") {
			t.Fatalf("fatal message %q does not mention %s", rec.msg, RequireRedisEnv)
		}
	})
}

func TestStartFailureReportsOutput(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "redis-server")
	script := "#!/bin/sh\necho 'fake redis: could not bind' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatalf("write fake redis-server: %v", err)
	}
	useCandidates(t, fake)

	rec := runRecorded(t, func(tb testing.TB) { MustStartRedis(tb) })
	if got, want := rec.outcome, "fatal"; got != want {
		t.Fatalf("outcome = %q (%s), want %q", got, rec.msg, want)
	}
	if got, want := strings.Count(rec.msg, "fake redis: could not bind"), startAttempts; got != want {
		t.Fatalf("failure message shows the server output %d times, want %d:\n%s", got, want, rec.msg)
	}
}

// useCandidates makes findRedisServer look only at paths for the rest of the test.
func useCandidates(tb testing.TB, paths ...string) {
	tb.Helper()
	old := redisServerCandidates
	redisServerCandidates = paths
	tb.Cleanup(func() { redisServerCandidates = old })
}

// recordingTB records a Skip or Fatal instead of ending the real test. Like
// the real ones, Skip and Fatal end the calling goroutine.
type recordingTB struct {
	testing.TB
	outcome string // "", "skip" or "fatal"
	msg     string
}

func (r *recordingTB) Skip(args ...any) { r.stop("skip", fmt.Sprint(args...)) }

func (r *recordingTB) Skipf(format string, args ...any) { r.stop("skip", fmt.Sprintf(format, args...)) }

func (r *recordingTB) Fatal(args ...any) { r.stop("fatal", fmt.Sprint(args...)) }

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.stop("fatal", fmt.Sprintf(format, args...))
}

func (r *recordingTB) stop(outcome, msg string) {
	r.outcome, r.msg = outcome, msg
	runtime.Goexit()
}

// runRecorded runs f on its own goroutine with a recordingTB wrapping tb and
// returns the recorder once f returns or stops.
func runRecorded(tb testing.TB, f func(testing.TB)) *recordingTB {
	tb.Helper()
	rec := &recordingTB{TB: tb}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(rec)
	}()
	<-done
	return rec
}

func TestFillToMaxmemory(t *testing.T) {
	srv := MustStartRedis(t)
	srv.FillToMaxmemory(t)
	c := srv.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM ") {
		t.Fatalf("SET on a full server = %v, want OOM", err)
	}
	if err := c.Get(ctx, "fill:0").Err(); err != nil {
		t.Fatalf("GET on a full server = %v, want it served", err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET after lifting maxmemory = %v", err)
	}
}
