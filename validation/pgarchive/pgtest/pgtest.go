// Package pgtest starts a real PostgreSQL server for tests: Debian's
// binaries (/usr/lib/postgresql/<version>/bin), a fresh cluster in a
// temporary directory, trust authentication, listening on a free
// 127.0.0.1 port only, with fsync off (a test's data need not survive a
// crash of the machine).
//
// Start is the only place a test may skip because PostgreSQL is missing;
// setting ARBITER_REQUIRE_POSTGRES turns that skip into a failure, so CI
// cannot silently pass without PostgreSQL.
//
// PostgreSQL refuses to run as root: under root the server runs as the
// postgres system user (which Debian's package creates), and its directory
// belongs to that user.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequirePostgresEnv names the environment variable that, when non-empty,
// makes Start fail instead of skip when PostgreSQL is not installed.
const RequirePostgresEnv = "ARBITER_REQUIRE_POSTGRES"

const (
	// readyTimeout bounds how long a start waits for the server to accept
	// connections.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds a fast shutdown before the server is killed.
	stopTimeout = 30 * time.Second
	// pollInterval is the pause between two readiness probes.
	pollInterval = 20 * time.Millisecond
	// startAttempts is how many free ports Start tries.
	startAttempts = 3
	// superuser is the cluster's superuser, the role DSN connects as.
	superuser = "postgres"
)

// binGlob is where Debian installs each PostgreSQL version's programs.
// Tests replace it to exercise the missing-binary path.
var binGlob = "/usr/lib/postgresql/*/bin"

// Server is a PostgreSQL server started for a test. Its port and data
// directory stay the same across Stop and Start.
type Server struct {
	// Port is the TCP port the server listens on, on 127.0.0.1.
	Port int
	// Dir is the server's directory: the cluster in Dir/data, the Unix
	// socket and the log beside it.
	Dir string

	bin  string              // the folder holding initdb, postgres and pg_isready
	cred *syscall.Credential // the postgres user's, when the test runs as root

	mu   sync.Mutex
	proc *process // the running server; nil when stopped
}

// process is one run of postgres.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
}

// Start creates a cluster in a temporary directory, starts PostgreSQL on a
// free 127.0.0.1 port, waits until it accepts connections, and stops it
// and removes the directory when the test ends. When PostgreSQL is not
// installed it skips the test, or fails it if ARBITER_REQUIRE_POSTGRES is
// set.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := findBin()
	if err != nil {
		fatal, msg := missingAction(os.Getenv(RequirePostgresEnv) != "")
		if fatal {
			tb.Fatalf("%s (%v)", msg, err)
		}
		tb.Skip(msg)
		return nil
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresCredential(); err != nil {
			tb.Fatalf("pgtest: running as root and %v", err)
		}
	}
	if s.Dir, err = os.MkdirTemp("", "arbiter-pg-"); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		s.stop()
		if tb.Failed() {
			tb.Logf("postgres log (tail):\n%s", s.logTail(4000))
		}
		_ = os.RemoveAll(s.Dir)
	})
	if s.cred != nil {
		if err := os.Chown(s.Dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	if out, err := s.command("initdb", "-D", s.dataDir(), "-U", superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	var failures []error
	for range startAttempts {
		if s.Port, err = freePort(); err != nil {
			tb.Fatalf("pgtest: find a free port: %v", err)
		}
		if err = s.start(); err == nil {
			return s
		}
		failures = append(failures, fmt.Errorf("port %d: %w", s.Port, err))
	}
	tb.Fatalf("pgtest: postgres did not start: %v\n%s", errors.Join(failures...), s.logTail(4000))
	return nil
}

// DSN returns a connection string for the superuser and the postgres
// database, without TLS.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", superuser, s.Port)
}

// Stop shuts the server down (a fast shutdown: open sessions are ended,
// their transactions rolled back) and waits until it has exited. The data
// stay for Start.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.stop(); err != nil {
		tb.Fatalf("pgtest: stop: %v", err)
	}
}

// Start starts a stopped server again, on the same port and data, and
// waits until it accepts connections. It does nothing if the server runs.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		return
	}
	if err := s.start(); err != nil {
		tb.Fatalf("pgtest: restart on port %d: %v\n%s", s.Port, err, s.logTail(4000))
	}
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.Dir, "postgres.log") }

// command prepares one of PostgreSQL's programs, run as the postgres user
// when the test runs as root.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = sysProcAttr(s.cred)
	// initdb and postgres take their locale from the environment: C is
	// always there.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	return cmd
}

// start runs postgres and waits until it accepts connections; on failure
// the process is dead and reaped.
func (s *Server) start() error {
	log, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := s.command("postgres", "-D", s.dataDir(),
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-k", s.Dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	if err := s.waitReady(p); err != nil {
		_ = s.stop()
		return err
	}
	return nil
}

// waitReady asks pg_isready until the server accepts connections, the
// process exits or readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		probe := exec.Command(filepath.Join(s.bin, "pg_isready"), "-q", "-h", "127.0.0.1",
			"-p", strconv.Itoa(s.Port), "-U", superuser, "-d", "postgres", "-t", "1")
		if probe.Run() == nil {
			return nil
		}
		select {
		case <-p.done:
			return errors.New("postgres exited during start")
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v", readyTimeout)
		}
	}
}

// stop sends SIGINT (fast shutdown) and waits for the exit, killing the
// server after stopTimeout. It is safe to call on a stopped server.
func (s *Server) stop() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("postgres did not stop within %v: killed", stopTimeout)
	}
}

// logTail returns the last n bytes of the server's log.
func (s *Server) logTail(n int) string {
	b, err := os.ReadFile(s.logFile())
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// missingAction decides what to do when PostgreSQL is not installed:
// fail when it is required (ARBITER_REQUIRE_POSTGRES set), skip otherwise.
// msg is the text to report either way.
func missingAction(required bool) (fatal bool, msg string) {
	if required {
		return true, "PostgreSQL not found and " + RequirePostgresEnv +
			" is set: install it (apt-get install postgresql)"
	}
	return false, "PostgreSQL not found: install it (apt-get install postgresql) " +
		"to run this test; set " + RequirePostgresEnv + "=1 to make its absence an error"
}

// findBin returns the newest installed version's bin folder that holds
// initdb, postgres and pg_isready.
func findBin() (string, error) {
	dirs, err := filepath.Glob(binGlob)
	if err != nil {
		return "", err
	}
	// Newest first: versions are numbers, 9.6 < 10 < 15.
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		ok := true
		for _, p := range []string{"initdb", "postgres", "pg_isready"} {
			if fi, err := os.Stat(filepath.Join(d, p)); err != nil || fi.Mode()&0o111 == 0 {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("no initdb, postgres and pg_isready in %s", binGlob)
}

// postgresCredential returns the postgres system user's ids.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("no postgres user to run PostgreSQL as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before postgres binds it, which is why Start retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
