package redissessions_test

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/validation/storetest"
	"github.com/arbiter-bank/arbiter/web"
	"github.com/arbiter-bank/arbiter/web/redissessions"
)

var _ web.SessionStore = (*redissessions.Store)(nil)

var (
	t0         = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	wantReason = storetest.WantReason
)

// backends are the Redis deployments the session store's contract runs
// on: a redis-server, miniredis (embedded mode), deploy/users.acl's
// limited arbiter user, and a 3-master cluster.
var backends = map[string]func(tb testing.TB) redis.UniversalClient{
	"redis": func(tb testing.TB) redis.UniversalClient { return redistest.MustStartRedis(tb).Client(tb) },
	"miniredis": func(tb testing.TB) redis.UniversalClient {
		rdb := redis.NewClient(&redis.Options{Addr: redistest.MustStartMiniredis(tb).Addr()})
		tb.Cleanup(func() { rdb.Close() })
		return rdb
	},
	"redis-acl": aclClient,
	"cluster": func(tb testing.TB) redis.UniversalClient {
		return redistest.MustStartCluster(tb).Client(tb)
	},
}

func forEachBackend(t *testing.T, test func(t *testing.T, rdb redis.UniversalClient)) {
	for name, newBackend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newBackend(t))
		})
	}
}

// aclClient connects to a redis-server as deploy/users.acl's "arbiter"
// user, its rules read from the file, so the ACL is known to allow
// everything the session store does.
func aclClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	data, err := os.ReadFile("../../deploy/users.acl")
	if err != nil {
		tb.Fatal(err)
	}
	var rules []string
	for line := range strings.Lines(string(data)) {
		if r, ok := strings.CutPrefix(strings.TrimSpace(line), "user arbiter "); ok {
			rules = strings.Fields(r)
		}
	}
	if len(rules) == 0 {
		tb.Fatal("deploy/users.acl has no arbiter user")
	}
	srv := redistest.MustStartRedis(tb)
	const password = "arbiter-test-password"
	args := []any{"ACL", "SETUSER", "arbiter"}
	for _, r := range append(rules, ">"+password) {
		args = append(args, r)
	}
	if err := srv.Client(tb).Do(context.Background(), args...).Err(); err != nil {
		tb.Fatalf("ACL SETUSER arbiter: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "arbiter", Password: password})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// sessionKey is a session's key as package web makes it: the hex SHA-256
// of a cookie's id (any 64 hex digits will do here).
const sessionKey = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// TestContractSessions runs the session store's contract on every backend,
// the limited ACL user of deploy/users.acl and a cluster included.
func TestContractSessions(t *testing.T) {
	ctx := context.Background()
	const idle = 10 * time.Minute
	value := []byte(`{"agent":"ana","csrf":"token"}`)

	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		s := redissessions.New(rdb, redissessions.Options{})

		touch := func(t *testing.T, at time.Duration) bool {
			t.Helper()
			got, ok, err := s.TouchSession(ctx, sessionKey, t0.Add(at), idle)
			if err != nil {
				t.Fatalf("touch at +%v: %v", at, err)
			}
			if ok && string(got) != string(value) {
				t.Fatalf("touch at +%v = %q, want %q", at, got, value)
			}
			return ok
		}
		create := func(t *testing.T, expires time.Time) {
			t.Helper()
			if err := s.CreateSession(ctx, sessionKey, value, t0, idle, expires); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("a use restarts the idle time", func(t *testing.T) {
			create(t, t0.Add(12*time.Hour))
			for _, at := range []time.Duration{9 * time.Minute, 18 * time.Minute, 27 * time.Minute} {
				if !touch(t, at) {
					t.Fatalf("session gone at +%v, 9 minutes after its last use", at)
				}
			}
			if touch(t, 37*time.Minute) {
				t.Fatal("session alive 10 minutes after its last use")
			}
			if v, err := rdb.HGet(ctx, "arb:session:"+sessionKey, "v").Result(); err == nil {
				t.Fatalf("an idle session is still stored: %q", v)
			}
		})

		t.Run("ends at its expiry however active", func(t *testing.T) {
			create(t, t0.Add(20*time.Minute))
			if !touch(t, 9*time.Minute) || !touch(t, 18*time.Minute) {
				t.Fatal("session gone before its expiry")
			}
			if touch(t, 20*time.Minute) {
				t.Fatal("session alive at its expiry")
			}
		})

		t.Run("deleted, it is gone", func(t *testing.T) {
			create(t, t0.Add(12*time.Hour))
			if err := s.DeleteSession(ctx, sessionKey); err != nil {
				t.Fatal(err)
			}
			if touch(t, time.Second) {
				t.Fatal("a deleted session was read")
			}
			if err := s.DeleteSession(ctx, sessionKey); err != nil {
				t.Fatalf("deleting an unknown session: %v", err)
			}
		})

		t.Run("sign-in attempts count in a window that opens at the first, up to max", func(t *testing.T) {
			const window, max = 10 * time.Minute, 3
			for i, at := range []time.Duration{0, time.Minute, 9 * time.Minute} {
				n, until, ok, err := s.ReserveSignIn(ctx, "user:ana", t0.Add(at), window, max)
				if err != nil {
					t.Fatal(err)
				}
				if n != i+1 || !until.Equal(t0.Add(window)) || !ok {
					t.Fatalf("attempt %d = %d until %v admitted %v, want %d until %v admitted", i+1, n, until, ok, i+1, t0.Add(window))
				}
			}
			n, until, ok, err := s.ReserveSignIn(ctx, "user:ana", t0.Add(9*time.Minute), window, max)
			if err != nil || ok || n != max || !until.Equal(t0.Add(window)) {
				t.Fatalf("attempt past max = %d until %v admitted %v (%v), want refused at %d until %v", n, until, ok, err, max, t0.Add(window))
			}
			n, until, err = s.SignInFailures(ctx, "user:ana")
			if err != nil || n != 3 || !until.Equal(t0.Add(window)) {
				t.Fatalf("failures = %d until %v (%v), want 3 until %v", n, until, err, t0.Add(window))
			}
			if n, _, err := s.SignInFailures(ctx, "addr:ana"); err != nil || n != 0 {
				t.Fatalf("another key's failures = %d (%v), want 0", n, err)
			}
			if err := s.ReleaseSignIn(ctx, "user:ana"); err != nil {
				t.Fatal(err)
			}
			if n, _, ok, err := s.ReserveSignIn(ctx, "user:ana", t0.Add(9*time.Minute), window, max); err != nil || !ok || n != 3 {
				t.Fatalf("attempt after a release = %d admitted %v (%v), want 3 admitted", n, ok, err)
			}
			if err := s.ReleaseSignIn(ctx, "addr:nobody"); err != nil {
				t.Fatalf("releasing an unknown key: %v", err)
			}
			n, until, ok, err = s.ReserveSignIn(ctx, "user:ana", t0.Add(window), window, max)
			if err != nil || n != 1 || !ok || !until.Equal(t0.Add(2*window)) {
				t.Fatalf("first attempt after the window = %d until %v admitted %v (%v), want 1 until %v", n, until, ok, err, t0.Add(2*window))
			}
			if err := s.ResetSignIn(ctx, "user:ana"); err != nil {
				t.Fatal(err)
			}
			if n, _, err := s.SignInFailures(ctx, "user:ana"); err != nil || n != 0 {
				t.Fatalf("failures after a reset = %d (%v), want 0", n, err)
			}
		})
	})
}

// TestSessionsUnavailable: a dead Redis is unavailable (503), never "no
// session" (which would sign agents out) nor "no failures".
func TestSessionsUnavailable(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	s := redissessions.New(rdb, redissessions.Options{})
	srv.Kill()
	ctx, now := context.Background(), time.Now()
	_, _, touchErr := s.TouchSession(ctx, sessionKey, now, time.Minute)
	_, _, readErr := s.SignInFailures(ctx, "user:ana")
	_, _, _, failErr := s.ReserveSignIn(ctx, "user:ana", now, time.Minute, 5)
	for name, err := range map[string]error{
		"create": s.CreateSession(ctx, sessionKey, []byte("v"), now, time.Minute, now.Add(time.Hour)),
		"touch":  touchErr, "delete": s.DeleteSession(ctx, sessionKey),
		"read failures": readErr, "reserve": failErr, "reset": s.ResetSignIn(ctx, "user:ana"),
		"release": s.ReleaseSignIn(ctx, "user:ana"),
	} {
		t.Run(name, func(t *testing.T) { wantReason(t, err, validation.ReasonUnavailable) })
	}
}

// TestSessionsCost pins each operation's round trips and in-script
// commands on a real redis-server, the TTLs they leave (the idle time,
// capped at the session's expiry, and the throttle's window) and the
// scripts it reports to Options.Observe.
func TestSessionsCost(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	var observed []string
	s := redissessions.New(rdb, redissessions.Options{Observe: func(script string, _ time.Duration, err error) {
		if err != nil {
			t.Errorf("observed %s: %v", script, err)
		}
		observed = append(observed, script)
	}})
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name string
		op   func() error
		want map[string]int64 // commands the server ran, scripts' own included
		key  string           // then this key's TTL is
		ttl  time.Duration
	}{
		{"create", func() error {
			return s.CreateSession(ctx, sessionKey, []byte("v"), now, 10*time.Minute, now.Add(12*time.Minute))
		}, map[string]int64{"evalsha": 1, "hset": 1, "pexpire": 1}, "arb:session:" + sessionKey, 10 * time.Minute},
		{"touch near the expiry", func() error {
			_, ok, err := s.TouchSession(ctx, sessionKey, now.Add(9*time.Minute), 10*time.Minute)
			if err == nil && !ok {
				t.Error("session not found")
			}
			return err
		}, map[string]int64{"evalsha": 1, "hmget": 1, "hset": 1, "pexpire": 1}, "arb:session:" + sessionKey, 3 * time.Minute},
		{"first attempt", func() error {
			_, _, _, err := s.ReserveSignIn(ctx, "addr:10.0.0.1", now, 10*time.Minute, 20)
			return err
		},
			map[string]int64{"evalsha": 1, "hmget": 1, "hset": 1, "pexpire": 1}, "arb:signin:addr:10.0.0.1", 10 * time.Minute},
		{"next attempt", func() error {
			_, _, _, err := s.ReserveSignIn(ctx, "addr:10.0.0.1", now, 10*time.Minute, 20)
			return err
		},
			map[string]int64{"evalsha": 1, "hmget": 1, "hincrby": 1}, "", 0},
		{"release", func() error { return s.ReleaseSignIn(ctx, "addr:10.0.0.1") },
			map[string]int64{"evalsha": 1, "hget": 1, "hincrby": 1}, "", 0},
		{"read failures", func() error { _, _, err := s.SignInFailures(ctx, "addr:10.0.0.1"); return err },
			map[string]int64{"hmget": 1}, "", 0},
		{"reset", func() error { return s.ResetSignIn(ctx, "addr:10.0.0.1") }, map[string]int64{"del": 1}, "", 0},
		{"delete", func() error { return s.DeleteSession(ctx, sessionKey) }, map[string]int64{"del": 1}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.CommandStats(t)
			if err := tt.op(); err != nil {
				t.Fatal(err)
			}
			got := srv.CommandStats(t)
			for k, v := range before {
				if got[k] -= v; got[k] == 0 {
					delete(got, k)
				}
			}
			delete(got, "info") // the snapshots' own
			delete(got, "hello")
			if !maps.Equal(got, tt.want) {
				t.Errorf("commands = %v, want %v", got, tt.want)
			}
			if tt.key == "" {
				return
			}
			ttl, err := rdb.PTTL(ctx, tt.key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl <= tt.ttl-5*time.Second || ttl > tt.ttl {
				t.Errorf("PTTL %s = %v, want about %v", tt.key, ttl, tt.ttl)
			}
		})
	}
	if want := []string{"session_create", "session_touch", "signin_fail", "signin_fail", "signin_release"}; !slices.Equal(observed, want) {
		t.Errorf("observed scripts %v, want %v", observed, want)
	}
}

// TestSessionsStoreFull: a full Redis (maxmemory, noeviction) refuses new
// sessions and new failure counts (store_full, nothing written), but
// agents already signed in keep working: a session's read restarts its
// TTL before it writes anything that may add memory.
func TestSessionsStoreFull(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	s := redissessions.New(rdb, redissessions.Options{})
	ctx, now := context.Background(), time.Now()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, sessionKey, []byte("v"), now, 10*time.Minute, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.ReserveSignIn(ctx, "user:ana", now, 10*time.Minute, 5); err != nil {
		t.Fatal(err)
	}
	srv.FillToMaxmemory(t)

	t.Run("a signed-in agent's session is read", func(t *testing.T) {
		if _, ok, err := s.TouchSession(ctx, sessionKey, now.Add(time.Minute), 10*time.Minute); err != nil || !ok {
			t.Fatalf("touch under maxmemory = %v, %v; want the session", ok, err)
		}
	})
	t.Run("a new session is refused and writes nothing", func(t *testing.T) {
		const other = "0000000000000000000000000000000000000000000000000000000000000000"
		wantReason(t, s.CreateSession(ctx, other, []byte("v"), now, 10*time.Minute, now.Add(time.Hour)), validation.ReasonStoreFull)
		if n, err := rdb.Exists(ctx, "arb:session:"+other).Result(); err != nil || n != 0 {
			t.Fatalf("the refused session left %d keys (%v)", n, err)
		}
	})
	t.Run("a failure count is refused; counts are read and reset", func(t *testing.T) {
		_, _, _, err := s.ReserveSignIn(ctx, "user:bruno", now, 10*time.Minute, 5)
		wantReason(t, err, validation.ReasonStoreFull)
		if n, _, err := s.SignInFailures(ctx, "user:ana"); err != nil || n != 1 {
			t.Fatalf("failures under maxmemory = %d (%v), want 1", n, err)
		}
		if err := s.ResetSignIn(ctx, "user:ana"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sign-out works", func(t *testing.T) {
		if err := s.DeleteSession(ctx, sessionKey); err != nil {
			t.Fatal(err)
		}
	})
}
