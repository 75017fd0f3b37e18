package redissessions_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/internal/mutation"
)

// mutant is a realistic one-line bug in one of the session scripts: the
// exact snippet from, found exactly once in lua/<file>, replaced by to;
// TestContractSessions must fail with it.
type mutant struct {
	name, file, from, to, bug string
}

// mutants is the session scripts' mutation run (TestMutants), the same
// machinery as validation/redisstore's for the customer scripts.
var mutants = []mutant{
	{name: "session-expiry-ignored", file: "session_touch.lua",
		from: " or now >= expires then", to: " then",
		bug: "a session kept busy outlives its absolute expiry (12 h) on the caller's clock"},
	{name: "session-idle-not-restarted", file: "session_touch.lua",
		from: "redis.call('HSET', KEYS[1], 'seen', math.max(seen, now))\n", to: "",
		bug: "a use does not restart the idle time: busy agents are signed out after 15 minutes"},
	{name: "signin-window-never-ends", file: "signin_fail.lua",
		from: "if not untilms or now >= untilms then", to: "if not untilms then",
		bug: "failed sign-ins keep counting into an ended window: a blocked user stays blocked"},
	{name: "signin-no-limit", file: "signin_fail.lua",
		from: "if (n or 0) >= max then return {n or 0, untilms, 0} end\n", to: "",
		bug: "attempts past the limit are admitted: parallel guesses all get a bcrypt comparison"},
}

// killTest is the test that must fail with each mutant, on the real thing
// and the embedded one (the cluster and ACL backends run the same scripts).
const killTest = "^TestContractSessions$/^(redis|miniredis)$"

// TestMutantSnippets runs always, so the list fails loudly when a script
// changes under it.
func TestMutantSnippets(t *testing.T) {
	for _, m := range mutants {
		src, err := os.ReadFile(filepath.Join("lua", m.file))
		if err != nil {
			t.Fatalf("mutant %s: %v", m.name, err)
		}
		if got := strings.Count(string(src), m.from); got != 1 {
			t.Errorf("mutant %s: lua/%s contains its snippet %d times, want 1: update the mutant with the script", m.name, m.file, got)
		}
	}
}

// TestMutants applies each mutant at build time (go test -overlay) and
// fails listing those TestContractSessions does not kill. Run it with
//
//	ARBITER_MUTANTS=1 go test -v -run TestMutants ./web/redissessions/
func TestMutants(t *testing.T) {
	if os.Getenv(mutation.Env) != "1" {
		t.Skipf("set %s=1 to run the session scripts' mutation run (%d go test runs)", mutation.Env, len(mutants)+1)
	}
	if out, ok := goTest(t, ""); !ok {
		t.Fatalf("control: %s fails on the real scripts:\n%s", killTest, out)
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			out, ok := goTest(t, mutation.Overlay(t, filepath.Join("lua", m.file), m.from, m.to))
			switch fails := mutation.Failures(out); {
			case ok:
				t.Errorf("SURVIVED lua/%s: %s", m.file, m.bug)
			case len(fails) == 0:
				t.Errorf("lua/%s: go test failed without a failing test (not a kill):\n%s", m.file, out)
			default:
				t.Logf("killed lua/%s: %s; by %s", m.file, m.bug, strings.Join(fails, ", "))
			}
		})
	}
}

// goTest runs killTest (with the overlay, unless it is "") and returns the
// output and whether it passed; a pattern matching no test never passes.
func goTest(tb testing.TB, overlay string) (string, bool) {
	tb.Helper()
	args := []string{"test", "-count=1", "-timeout=3m", "-run=" + killTest}
	if overlay != "" {
		args = append(args, "-overlay="+overlay)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Env = mutation.Environ()
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "no tests to run") {
		tb.Fatalf("go test -run %q matched no test:\n%s", killTest, out)
	}
	return string(out), err == nil
}
