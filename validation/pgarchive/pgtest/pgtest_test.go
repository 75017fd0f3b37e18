package pgtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// psql runs one statement through the server's own psql and returns its
// unaligned output.
func psql(tb testing.TB, s *Server, sql string) (string, error) {
	tb.Helper()
	out, err := exec.Command(filepath.Join(s.bin, "psql"), "-X", "-A", "-t", "-d", s.DSN(), "-c", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestStart(t *testing.T) {
	s := Start(t)
	if got, want := s.DSN(), fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port); got != want {
		t.Fatalf("DSN() = %q, want %q", got, want)
	}
	if _, err := psql(t, s, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatalf("create: %v", err)
	}

	t.Run("stop and start keep the data", func(t *testing.T) {
		s.Stop(t)
		if out, err := psql(t, s, "SELECT 1"); err == nil {
			t.Fatalf("a stopped server answered: %s", out)
		}
		s.Stop(t) // a second Stop is harmless
		s.Start(t)
		out, err := psql(t, s, "SELECT v FROM kept")
		if err != nil {
			t.Fatalf("select after restart: %v: %s", err, out)
		}
		if got, want := out, "7"; got != want {
			t.Fatalf("kept row = %q, want %q", got, want)
		}
	})

	t.Run("listens on loopback only with fsync off", func(t *testing.T) {
		for setting, want := range map[string]string{"listen_addresses": "127.0.0.1", "fsync": "off",
			"port": strconv.Itoa(s.Port)} {
			got, err := psql(t, s, "SHOW "+setting)
			if err != nil {
				t.Fatalf("SHOW %s: %v: %s", setting, err, got)
			}
			if got != want {
				t.Errorf("%s = %q, want %q", setting, got, want)
			}
		}
	})
}

func TestMissingAction(t *testing.T) {
	for _, tc := range []struct {
		required  bool
		wantFatal bool
	}{{false, false}, {true, true}} {
		fatal, msg := missingAction(tc.required)
		if fatal != tc.wantFatal {
			t.Errorf("missingAction(%v) fatal = %v, want %v", tc.required, fatal, tc.wantFatal)
		}
		if !strings.Contains(msg, RequirePostgresEnv) || !strings.Contains(msg, "apt-get install postgresql") {
			t.Errorf("missingAction(%v) msg = %q, want it to name %s and the package", tc.required, msg, RequirePostgresEnv)
		}
	}
}

func TestMissingPostgres(t *testing.T) {
	old := binGlob
	binGlob = filepath.Join(t.TempDir(), "*", "bin")
	t.Cleanup(func() { binGlob = old })

	t.Run("skips when not required", func(t *testing.T) {
		t.Setenv(RequirePostgresEnv, "")
		rec := runRecorded(t, func(tb testing.TB) { Start(tb) })
		if got, want := rec.outcome, "skip"; got != want {
			t.Fatalf("outcome = %q (%s), want %q", got, rec.msg, want)
		}
	})

	t.Run("fails when required", func(t *testing.T) {
		t.Setenv(RequirePostgresEnv, "1")
		rec := runRecorded(t, func(tb testing.TB) { Start(tb) })
		if got, want := rec.outcome, "fatal"; got != want {
			t.Fatalf("outcome = %q (%s), want %q", got, rec.msg, want)
		}
		if !strings.Contains(rec.msg, RequirePostgresEnv+" is set") {
			t.Fatalf("fatal message %q does not mention %s", rec.msg, RequirePostgresEnv)
		}
	})
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
