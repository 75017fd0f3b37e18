package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The production configuration under test, relative to this package.
const (
	prodRedisConf = "../../deploy/redis.conf"
	prodUsersACL  = "../../deploy/users.acl"
)

// Passwords the test gives the users of deploy/users.acl, which ships them
// without any (resetpass) so that nobody can log in before an operator sets one.
const (
	aclArbiterPassword = "arbiter-test-password"
	aclAdminPassword   = "admin-test-password"
)

// The whole contract suite also runs on deploy/redis.conf as the limited
// "arbiter" ACL user, so the ACL is known to allow everything the store does.
// Expiry is watched through the admin user: arbiter's own may not run EXISTS.
// The outbox is on, as in production with an archive, so the ACL is known
// to allow it too.
func init() {
	backends["redis-acl"] = func(tb testing.TB) backend {
		r := startProdRedis(tb)
		rdb := r.client(tb, "arbiter", aclArbiterPassword)
		return backend{
			store:  redisstore.New(rdb, redisstore.Options{OutboxCap: testOutboxCap}),
			rdb:    rdb,
			expire: waitHoldGone(r.client(tb, "admin", aclAdminPassword)),
		}
	}
}

// prodRedis is a redis-server started from deploy/redis.conf.
type prodRedis struct {
	addr, dir string
	args      []string
	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
	out       aclOutput
}

// aclOutput collects the server's output; exec's copiers write it while a
// failing test reads it.
type aclOutput struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *aclOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *aclOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// startProdRedis starts redis-server with deploy/redis.conf as its config
// file, overriding only where it listens, where it writes and where the ACL
// file is (a copy of deploy/users.acl with test passwords appended). Every
// other directive, AOF and ACL rules included, is the file's own.
func startProdRedis(tb testing.TB) *prodRedis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(redistest.RequireRedisEnv) != "" {
			tb.Fatalf("redis-server not found and %s is set: %v", redistest.RequireRedisEnv, err)
		}
		tb.Skipf("redis-server not found (%v); set %s=1 to make this a failure", err, redistest.RequireRedisEnv)
	}
	conf, err := filepath.Abs(prodRedisConf)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	acl := filepath.Join(dir, "users.acl")
	writeTestACL(tb, acl)
	r := &prodRedis{dir: dir}
	tb.Cleanup(func() {
		r.kill()
		if tb.Failed() {
			tb.Logf("redis-server output:\n%s", r.output())
		}
	})
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		r.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.args = []string{conf, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--aclfile", acl, "--supervised", "no", "--daemonize", "no"}
		err = r.start(bin)
		if err == nil {
			return r
		}
		if attempt == 3 {
			tb.Fatalf("start redis-server with %s: %v\n%s", prodRedisConf, err, r.output())
		}
	}
}

// writeTestACL copies deploy/users.acl, appending a password to the
// arbiter and admin users as an operator would.
func writeTestACL(tb testing.TB, path string) {
	tb.Helper()
	data, err := os.ReadFile(prodUsersACL)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "user arbiter "):
			line += " >" + aclArbiterPassword
		case strings.HasPrefix(line, "user admin "):
			line += " >" + aclAdminPassword
		}
		out = append(out, line)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func (r *prodRedis) start(bin string) error {
	r.mu.Lock()
	r.cmd = exec.Command(bin, r.args...)
	r.cmd.Dir = r.dir
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		r.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	r.done = done
	go func(c *exec.Cmd) { _ = c.Wait(); close(done) }(r.cmd)
	r.mu.Unlock()

	admin := redis.NewClient(&redis.Options{Addr: r.addr, Username: "admin", Password: aclAdminPassword,
		DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer admin.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := admin.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("no PONG within 10s: %v", err)
		}
	}
}

// kill stops the server with SIGKILL, as a crash or a power cut would.
func (r *prodRedis) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

func (r *prodRedis) output() string { return r.out.String() }

func (r *prodRedis) client(tb testing.TB, user, password string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.addr, Username: user, Password: password, MaxRetries: -1})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// TestProductionRedisConfig runs arbiter's store on deploy/redis.conf as the
// limited ACL user: every operation must work, nothing else may, and a
// grant must survive a crash of Redis.
func TestProductionRedisConfig(t *testing.T) {
	r := startProdRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := r.client(t, "admin", aclAdminPassword)

	t.Run("config is the durable one", func(t *testing.T) {
		for name, want := range map[string]string{
			"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction",
			"protected-mode": "yes", "no-appendfsync-on-rewrite": "no",
		} {
			got, err := admin.ConfigGet(ctx, name).Result()
			if err != nil {
				t.Fatalf("CONFIG GET %s: %v", name, err)
			}
			if got[name] != want {
				t.Errorf("%s = %q, want %q", name, got[name], want)
			}
		}
	})

	t.Run("default user is disabled", func(t *testing.T) {
		anon := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
		defer anon.Close()
		err := anon.Ping(ctx).Err()
		if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("unauthenticated PING = %v, want NOAUTH", err)
		}
	})

	rdb := r.client(t, "arbiter", aclArbiterPassword)
	store := redisstore.New(rdb, redisstore.Options{})
	if err := store.Load(ctx); err != nil {
		t.Fatalf("Load (SCRIPT LOAD, FUNCTION LOAD) as the arbiter user: %v", err)
	}
	if !store.Functions() {
		t.Fatal("as the arbiter user the check does not run as a function: users.acl must grant +fcall and +function|load")
	}
	svc := &validation.Service{Store: store, Policy: validation.DefaultPolicy()}

	t.Run("the clock measures its offset", func(t *testing.T) {
		clock := redisstore.NewClock(rdb, redisstore.ClockOptions{})
		if err := clock.Sync(ctx); err != nil {
			t.Fatalf("Sync (TIME) as the arbiter user: %v; users.acl must grant +time", err)
		}
	})

	t.Run("EVAL fallback when scripts are not cached", func(t *testing.T) {
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Customer(ctx, "C-acl-flush"); err != nil {
			t.Fatalf("Customer after SCRIPT FLUSH: %v", err)
		}
	})

	t.Run("WAIT is allowed (ARBITER_REDIS_WAIT_REPLICAS)", func(t *testing.T) {
		if err := rdb.Do(ctx, "WAIT", 0, 10).Err(); err != nil {
			t.Fatalf("WAIT as arbiter: %v", err)
		}
	})

	t.Run("nothing else is allowed", func(t *testing.T) {
		denied := map[string]error{
			"KEYS *":          rdb.Keys(ctx, "*").Err(),
			"FLUSHALL":        rdb.FlushAll(ctx).Err(),
			"CONFIG GET":      rdb.ConfigGet(ctx, "*").Err(),
			"SET outside":     rdb.Set(ctx, "other:key", "1", 0).Err(),
			"GET outside":     rdb.Get(ctx, "other:key").Err(),
			"script outside":  rdb.Eval(ctx, "return redis.call('SET', KEYS[1], '1')", []string{"other:key"}).Err(),
			"script KEYS":     rdb.Eval(ctx, "return redis.call('KEYS', '*')", nil).Err(), // SCAN is granted: reconciliation scans grants
			"SUBSCRIBE-ish":   rdb.Publish(ctx, "arb:chan", "x").Err(),
			"SCRIPT FLUSH":    rdb.ScriptFlush(ctx).Err(),
			"FUNCTION FLUSH":  rdb.FunctionFlush(ctx).Err(),
			"FUNCTION DELETE": rdb.FunctionDelete(ctx, "arbiter").Err(),
			"DEBUG SLEEP 0":   rdb.Do(ctx, "DEBUG", "SLEEP", "0").Err(),
			"ACL LIST":        rdb.Do(ctx, "ACL", "LIST").Err(),
			"MONITOR (as do)": rdb.Do(ctx, "MONITOR").Err(),
		}
		for what, err := range denied {
			if !refused(err) {
				t.Errorf("%s as arbiter = %v, want a permission error", what, err)
			}
		}
	})

	t.Run("grants survive a crash", func(t *testing.T) {
		ch, _, err := svc.Check(ctx, validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}},
			validation.CheckInput{CustomerID: "C-acl-crash", Product: "credit_card"})
		if err != nil {
			t.Fatal(err)
		}
		card := validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleRedeemer}}
		if _, _, err := svc.RedeemToken(ctx, card, ch.CustomerID, ch.Product, ch.ID, validation.TokenProof{Secret: validation.TokenSecret(ch.Secret)}); err != nil {
			t.Fatal(err)
		}
		r.kill() // SIGKILL right after the reply: only the fsynced AOF remains
		bin, _ := exec.LookPath("redis-server")
		if err := r.start(bin); err != nil {
			t.Fatalf("restart: %v", err)
		}
		// Redis replays a script's writes as MULTI/EXEC and re-checks EXEC
		// against the default user's ACL: a default user without
		// permissions makes it drop them, silently but for this log line.
		if out := r.output(); strings.Contains(out, "AOF-loading-client") {
			t.Errorf("the AOF did not replay cleanly:\n%s", out)
		}
		cust, err := svc.Customer(ctx, "C-acl-crash")
		if err != nil {
			t.Fatalf("Customer after restart: %v", err)
		}
		if got, want := len(cust.Grants), 1; got != want {
			t.Fatalf("grants after a crash = %d, want %d", got, want)
		}
		if got, want := cust.Grants[0].CheckID, ch.ID; got != want {
			t.Fatalf("grant's check = %s, want %s", got, want)
		}
	})
}

// refused reports whether err is Redis refusing a command on permissions:
// NOPERM, a script's call refused by the ACL, or a command disabled in the
// configuration.
func refused(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "NOPERM") ||
		strings.Contains(msg, "can't run this command") ||
		strings.Contains(msg, "command not allowed")
}
