// Package redistest starts Redis servers for tests: a real redis-server
// process on a free loopback port (MustStartRedis; MustStartTLSRedis for one
// on TLS only), or an embedded miniredis (MustStartMiniredis). All are
// stopped by the test's cleanup.
//
// MustStartRedis is the only place a test may skip because redis-server is
// missing; setting ARBITER_REQUIRE_REDIS turns that skip into a failure, so CI
// cannot silently pass without Redis.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// RequireRedisEnv names the environment variable that, when non-empty, makes
// MustStartRedis fail instead of skip when redis-server is missing.
const RequireRedisEnv = "ARBITER_REQUIRE_REDIS"

const (
	// startTimeout bounds how long one start waits for the server to answer PING.
	startTimeout = 10 * time.Second
	// startAttempts is how many free ports MustStartRedis tries before failing.
	startAttempts = 3
	// pollInterval is the pause between two PING probes while a server starts.
	pollInterval = 10 * time.Millisecond
)

// redisServerCandidates lists where to look for the redis-server binary, in
// order: a bare name is searched in PATH, a path is checked as is. Tests
// replace it to exercise the missing-binary path.
var redisServerCandidates = []string{"redis-server", "/usr/bin/redis-server"}

// Server is a real redis-server process started for a test. Addr, Port and
// Dir stay the same across Kill and Restart.
type Server struct {
	// Addr is the server's host:port, always on 127.0.0.1.
	Addr string
	// Port is the TCP port the server listens on.
	Port int
	// Dir is the server's working directory (a test temporary directory).
	Dir string

	// TLS is set by MustStartTLSRedis: the files a client needs. The
	// server then listens on TLS only, at Port.
	TLS *TLSFiles

	bin       string
	args      []string    // everything after the binary, port included
	clientTLS *tls.Config // nil: plain TCP

	mu   sync.Mutex
	proc *process // the current process; nil before the first start
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // Wait's result, valid after done is closed
}

// MustStartRedis starts redis-server on a free 127.0.0.1 port with no
// persistence and a temporary working directory, waits until it answers
// PING, and kills it when the test ends. extraArgs are appended to the
// command line, so they override the defaults (but must not change bind or
// port). When redis-server is not installed it skips the test, or fails it if
// ARBITER_REQUIRE_REDIS is set. Any other start failure fails the test with
// the server's output.
func MustStartRedis(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	bin, err := findRedisServer()
	if err != nil {
		fatal, msg := missingRedisAction(os.Getenv(RequireRedisEnv) != "")
		if fatal {
			tb.Fatalf("%s (%v)", msg, err)
		}
		tb.Skip(msg)
		return nil
	}
	s := &Server{Dir: tb.TempDir(), bin: bin}
	s.startOnFreePort(tb, extraArgs)
	return s
}

// startOnFreePort starts s on a free port, retrying on another one when the
// start fails, and kills it when the test ends.
func (s *Server) startOnFreePort(tb testing.TB, extraArgs []string) {
	tb.Helper()
	// Registered before any start, so it runs after every client's cleanup
	// and before TempDir removes Dir.
	tb.Cleanup(func() {
		s.Kill()
		if tb.Failed() {
			tb.Logf("redis-server %s output:\n%s", s.Addr, s.output())
		}
	})

	var failures []string
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: find a free port: %v", err)
		}
		s.setPort(port, extraArgs)
		err = s.start()
		if err == nil {
			return
		}
		failures = append(failures, fmt.Sprintf("attempt %d on port %d: %v\n%s", attempt, port, err, s.output()))
	}
	tb.Fatalf("redistest: redis-server did not start after %d attempts:\n%s",
		startAttempts, strings.Join(failures, "\n"))
}

// missingRedisAction decides what to do when redis-server is not installed:
// fail when Redis is required (ARBITER_REQUIRE_REDIS set), skip otherwise.
// msg is the text to report either way.
func missingRedisAction(required bool) (fatal bool, msg string) {
	if required {
		return true, "redis-server not found and " + RequireRedisEnv +
			" is set: install it (apt-get install redis-server)"
	}
	return false, "redis-server not found: install it (apt-get install redis-server) " +
		"to run this test; set " + RequireRedisEnv + "=1 to make its absence an error"
}

// findRedisServer returns the first of redisServerCandidates that is an
// executable file.
func findRedisServer() (string, error) {
	var errs []error
	for _, c := range redisServerCandidates {
		p, err := exec.LookPath(c)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before redis-server binds it, which is why MustStartRedis retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) setPort(port int, extraArgs []string) {
	s.Port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	listen := []string{"--port", strconv.Itoa(port)}
	if s.TLS != nil {
		listen = append([]string{"--port", "0", "--tls-port", strconv.Itoa(port)}, s.TLS.serverArgs()...)
	}
	s.args = append(append([]string{"--bind", "127.0.0.1"}, listen...),
		"--save", "",
		"--appendonly", "no",
		"--dir", s.Dir,
		"--daemonize", "no")
	s.args = append(s.args, extraArgs...)
}

// start runs one redis-server process and waits until it answers PING, it
// exits, or startTimeout passes. On failure the process is dead and reaped.
func (s *Server) start() error {
	p := &process{out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(s.bin, s.args...)
	p.cmd.Dir = s.Dir
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		if err := ping(s.Addr, s.clientTLS, time.Until(deadline)); err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited before answering PING: %v", p.err)
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server did not answer PING within %v", startTimeout)
		}
	}
}

// ping sends one PING over a fresh connection (TLS when tc is not nil) and
// expects +PONG.
func ping(addr string, tc *tls.Config, timeout time.Duration) error {
	timeout = min(max(timeout, 10*time.Millisecond), time.Second)
	var conn net.Conn
	var err error
	if tc != nil {
		conn, err = (&tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: tc}).Dial("tcp", addr)
	} else {
		conn, err = net.DialTimeout("tcp", addr, timeout)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		// A server still loading answers -LOADING; keep polling.
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Kill stops the server with SIGKILL, as a crash would, and waits for the
// process to exit. It does nothing if the server is not running. Data is
// lost: the server runs without persistence.
func (s *Server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // fails only if it already exited; done tells.
	<-p.done
}

// Pause stops the server with SIGSTOP, as a stalled host would: it keeps
// its connections and the commands sent meanwhile, and runs them once
// Resume sends SIGCONT. The test's cleanup resumes it.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.signal(tb, syscall.SIGSTOP)
	tb.Cleanup(func() { s.mu.Lock(); p := s.proc; s.mu.Unlock(); _ = p.cmd.Process.Signal(syscall.SIGCONT) })
}

// Resume continues a paused server.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.signal(tb, syscall.SIGCONT)
}

func (s *Server) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		tb.Fatalf("redistest: %v to a server that never started", sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("redistest: %v to redis-server %s: %v", sig, s.Addr, err)
	}
}

// Restart starts the server again with the same arguments, port and
// directory, after killing it if it is still running, and waits until it
// answers PING. It fails the test if the server does not come back.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: restart redis-server on %s: %v\n%s", s.Addr, err, s.output())
	}
}

// URL returns the server's address as a redis:// URL selecting database 0,
// as accepted by redis.ParseURL; rediss:// for a TLS server.
func (s *Server) URL() string {
	if s.TLS != nil {
		return "rediss://" + s.Addr + "/0"
	}
	return "redis://" + s.Addr + "/0"
}

// Client returns a go-redis client connected to the server, closed when the
// test ends. After Kill and Restart it reconnects on its next command.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, TLSConfig: s.clientTLS})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// FillToMaxmemory makes the server full the way a production Redis gets
// full (deploy/redis.conf: maxmemory-policy noeviction): it writes 4 MiB
// of filler keys (fill:<n>, outside arbiter's arb:* keys), then sets
// maxmemory 1 MiB below the memory in use and checks that a write is
// refused with OOM. The margin outlasts the transient client buffers that
// Redis counts as used memory, so the server stays full: it refuses
// commands, and scripts' first writes, that may add memory until maxmemory
// is raised (CONFIG SET maxmemory 0 lifts it).
func (s *Server) FillToMaxmemory(tb testing.TB) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true, TLSConfig: s.clientTLS})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := strings.Repeat("x", 1<<10)
	for n := 0; n < 4<<10; n += 256 {
		pipe := c.Pipeline()
		for i := n; i < n+256; i++ {
			pipe.Set(ctx, "fill:"+strconv.Itoa(i), value, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatalf("redistest: filling %s: %v", s.Addr, err)
		}
	}
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		tb.Fatalf("redistest: INFO memory on %s: %v", s.Addr, err)
	}
	used, err := infoInt(info, "used_memory")
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	limit := used - 1<<20
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", strconv.FormatInt(limit, 10)}} {
		if err := c.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			tb.Fatalf("redistest: CONFIG SET %s %s: %v", kv[0], kv[1], err)
		}
	}
	if err := c.Set(ctx, "fill:probe", value, 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM ") {
		tb.Fatalf("redistest: a write with maxmemory %d below used memory %d got %v, want OOM", limit, used, err)
	}
}

// infoInt reads one integer field of an INFO reply.
func infoInt(info, field string) (int64, error) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO has no %s field", field)
}

// CommandStats returns, for each command the server has executed since it
// started (or since CONFIG RESETSTAT), how many times it was called, keyed by
// lowercase command name as INFO commandstats spells it ("get", "evalsha",
// "client|setinfo"). Tests compare two snapshots to prove how many commands
// an operation cost. The INFO call itself is counted in later snapshots.
func (s *Server) CommandStats(tb testing.TB) map[string]int64 {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true, TLSConfig: s.clientTLS})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		tb.Fatalf("redistest: INFO commandstats on %s: %v", s.Addr, err)
	}
	stats, err := parseCommandStats(info)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return stats
}

// parseCommandStats parses INFO commandstats lines such as
// "cmdstat_get:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0".
func parseCommandStats(info string) (map[string]int64, error) {
	stats := make(map[string]int64)
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("parse commandstats line %q: no colon", line)
		}
		calls, found := int64(0), false
		for f := range strings.SplitSeq(fields, ",") {
			v, ok := strings.CutPrefix(f, "calls=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse commandstats line %q: %w", line, err)
			}
			calls, found = n, true
		}
		if !found {
			return nil, fmt.Errorf("parse commandstats line %q: no calls field", line)
		}
		stats[name] = calls
	}
	return stats, nil
}

// output returns what the current (or last) process wrote to stdout and stderr.
func (s *Server) output() string {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.out.String()
}

// MustStartMiniredis starts an embedded miniredis with ClockTTL enabled, so
// key TTLs run down with the real clock as they do on redis-server, and
// closes it when the test ends.
func MustStartMiniredis(tb testing.TB) *miniredis.Miniredis {
	tb.Helper()
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	if err := m.Start(); err != nil {
		tb.Fatalf("redistest: start miniredis: %v", err)
	}
	tb.Cleanup(m.Close)
	return m
}

// lockedBuffer is a bytes.Buffer safe for the process's output copier to
// write while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
