package pgtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
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

func TestFindBinMissing(t *testing.T) {
	old := binGlob
	binGlob = filepath.Join(t.TempDir(), "*", "bin")
	defer func() { binGlob = old }()
	if dir, err := findBin(); err == nil {
		t.Fatalf("findBin() = %q, want an error when nothing is installed", dir)
	}
}
