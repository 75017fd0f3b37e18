package mutants

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/mutation"
)

// mutant is a realistic one-line bug in the product side's settlement or
// its client of arbiter: the exact snippet from, found exactly once in
// products/<pkg>/<file>, replaced by to. tests are the tests of that
// package that must fail with it.
type mutant struct {
	name  string
	pkg   string // "issuing" or "client"
	file  string
	from  string
	to    string
	bug   string
	tests []string
}

// mutants is the product side's mutation run (TestMutants). Each entry keys
// on an exact snippet, so an edit that removes one fails TestMutantSnippets
// in every test run instead of letting the list rot; update the entry with
// the code.
var mutants = []mutant{
	// products/issuing: reconciliation
	{name: "reconcile-foreign-grant", pkg: "issuing", file: "reconcile.go",
		from: "x.Product == s.Product && x.RedeemedBy == s.ClientID && ", to: "x.Product == s.Product && ",
		bug:   "another service's grant of the product is taken as evidence to issue",
		tests: []string{"TestReconcileIssuesOnlyItsOwnGrant"}},
	{name: "reconcile-drops-otp-under-live-hold", pkg: "issuing", file: "reconcile.go",
		from: `h.Product == s.Product && (p.CheckID == "" || h.CheckID == p.CheckID)`, to: `h.Product == s.Product && h.CheckID == p.CheckID`,
		bug:   "an OTP application is dropped while a hold it may redeem lives: a late redemption leaves a grant without a product",
		tests: []string{"TestReconcileKeepsAnOTPApplicationWhileAHoldLives"}},
	{name: "reconcile-cancels-unknown-hold", pkg: "issuing", file: "reconcile.go",
		from: `if p.CheckID != "" {`, to: `if h.CheckID != "" {`,
		bug:   "reconciling an OTP application cancels whatever hold of the product lives, perhaps another channel's",
		tests: []string{"TestReconcileKeepsAnOTPApplicationWhileAHoldLives"}},
	{name: "reconcile-ignores-min-age", pkg: "issuing", file: "reconcile.go",
		from: "if p.CreatedAt.After(cutoff) {", to: "if p.CreatedAt.Before(cutoff) {",
		bug:   "reconciliation settles rows young enough to be in flight and skips the old ones",
		tests: []string{"TestCompensation"}},

	// products/issuing: redeem, issue, compensate
	{name: "redeem-retry-refusal-drops-row", pkg: "issuing", file: "service.go",
		from: "if !errors.As(err, &ae) || !ae.Retried {", to: "if !errors.As(err, &ae) || ae.Retried {",
		bug:   "a refusal that answered a retry deletes the pending row, though the first try may have redeemed",
		tests: []string{"TestRefusalOfARetryKeepsThePendingRow"}},
	{name: "compensate-ignores-issued", pkg: "issuing", file: "service.go",
		from: "if errors.Is(err, ErrIssued) {", to: "if errors.Is(err, ErrCompensated) {",
		bug:   "compensation that finds the product issued by another process is taken as a failure, not the issued product",
		tests: []string{"TestCompensateFindsTheProductIssued"}},
	{name: "issued-elsewhere-reported-as-failure", pkg: "issuing", file: "service.go",
		from: "if errors.Is(err, errIssuedElsewhere) {", to: "if errors.Is(err, ErrIssued) {",
		bug:   "the applicant is told the issue failed although another process issued the product",
		tests: []string{"TestCompensateFindsTheProductIssued"}},
	{name: "token-for-another-customer", pkg: "issuing", file: "service.go",
		from: "claims.CustomerID != a.CustomerID || claims.Product != s.Product", to: "claims.Product != s.Product",
		bug:   "an approval token for one customer issues the product to another",
		tests: []string{"TestApplyToken"}},
	{name: "unavailable-taken-as-refusal", pkg: "issuing", file: "errors.go",
		from: "return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500", to: "return errors.As(err, &ae) && ae.Status >= 400",
		bug:   "a 503 from arbiter is taken as a definite refusal and the pending row dropped, though the redemption may have run",
		tests: []string{"TestApplyToken"}},

	// products/client: Retry-After and retries
	{name: "retry-after-nanoseconds", pkg: "client", file: "client.go",
		from: "return time.Duration(s) * time.Second", to: "return time.Duration(s)",
		bug:   "Retry-After is read as nanoseconds",
		tests: []string{"TestParseRetryAfter"}},
	{name: "retry-after-past-date-negative", pkg: "client", file: "client.go",
		from: "return max(0, t.Sub(now))", to: "return t.Sub(now)",
		bug:   "a Retry-After date in the past is a negative wait",
		tests: []string{"TestParseRetryAfter"}},
	{name: "sleeps-on-long-retry-after", pkg: "client", file: "client.go",
		from: "if retryAfter > c.cfg.MaxBackoff {", to: "if retryAfter > time.Hour {",
		bug:   "an OTP rate limit (Retry-After an hour) is retried until the hold is gone, and reported as hold_expired",
		tests: []string{"TestRetryBudget"}},
	{name: "sleeps-past-deadline", pkg: "client", file: "client.go",
		from: "ok && time.Until(deadline) <= d {", to: "ok && time.Until(deadline) <= 0 {",
		bug:   "the client sleeps past its context's deadline and reports the deadline instead of arbiter's answer",
		tests: []string{"TestRetryBudget"}},
	{name: "retries-after-hold-expiry", pkg: "client", file: "client.go",
		from: "!c.cfg.Now().Add(d).Before(r.notAfter)", to: "!c.cfg.Now().Before(r.notAfter)",
		bug:   "a token's redemption is retried after its hold will have expired",
		tests: []string{"TestRetryBudget"}},
	{name: "token-expiry-unread", pkg: "client", file: "verify.go",
		from: "return time.Unix(claims.Exp, 0)", to: "return time.Time{}",
		bug:   "the token's exp is not read, so retries ignore the hold's end",
		tests: []string{"TestRetryBudget"}},
	{name: "retry-not-marked", pkg: "client", file: "client.go",
		from: "if attempt > 1 && errors.As(err, &e) {", to: "if attempt > 2 && errors.As(err, &e) {",
		bug:   "a refusal that answered the first retry is not marked Retried, so the product service trusts it",
		tests: []string{"TestRefusalOfARetryIsMarked"}},
	{name: "release-repeated-after-lost-answer", pkg: "client", file: "client.go",
		from: "if p == retrySafe {", to: "if p == retrySafe || p == retryUnsent {",
		bug:   "a release whose answer was lost is sent again",
		tests: []string{"TestRetries"}},
}

// mutantsEnv turns TestMutants on: each mutant costs a build and a test run.
const mutantsEnv = mutation.Env

// root is the module's root, from this package's directory.
const root = "../../.."

// TestMutantSnippets runs always: every mutant's snippet is in its file
// exactly once and every test named to kill it exists in its package, so
// the list fails loudly, not silently, when the code or a test changes.
func TestMutantSnippets(t *testing.T) {
	tests := map[string]map[string]bool{}
	names := map[string]bool{}
	for _, m := range mutants {
		if names[m.name] {
			t.Errorf("mutant %s is listed twice", m.name)
		}
		names[m.name] = true
		src, err := os.ReadFile(filepath.Join(root, "products", m.pkg, m.file))
		if err != nil {
			t.Errorf("mutant %s: %v", m.name, err)
			continue
		}
		if got, want := strings.Count(string(src), m.from), 1; got != want {
			t.Errorf("mutant %s: products/%s/%s contains its snippet %d times, want %d: update the mutant with the code\nsnippet: %q", m.name, m.pkg, m.file, got, want, m.from)
		}
		if m.from == m.to || m.bug == "" || len(m.tests) == 0 {
			t.Errorf("mutant %s: needs a change, a bug and the tests that kill it", m.name)
		}
		if tests[m.pkg] == nil {
			tests[m.pkg] = mutation.TestFuncs(t, filepath.Join(root, "products", m.pkg))
		}
		for _, name := range m.tests {
			if !tests[m.pkg][name] {
				t.Errorf("mutant %s: no test %s in products/%s", m.name, name, m.pkg)
			}
		}
	}
}

// TestMutants applies each mutant at build time (go test -overlay: nothing
// in the tree is modified), runs the tests of its package that should kill
// it, and fails listing the mutants that survived. A control run per
// package first proves those tests pass on the real code, so a kill is the
// mutant's doing. Run it with
//
//	ARBITER_MUTANTS=1 go test -v -run TestMutants ./products/internal/mutants/
//
// and one mutant with -run 'TestMutants/<name>' (the controls run too).
func TestMutants(t *testing.T) {
	if os.Getenv(mutantsEnv) != "1" {
		t.Skipf("set %s=1 to run the product side's mutation run (about %d go test runs)", mutantsEnv, len(mutants)+2)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the mutation run needs the go command: %v", err)
	}
	start := time.Now()

	byPkg := map[string][]string{}
	for _, m := range mutants {
		byPkg[m.pkg] = append(byPkg[m.pkg], m.tests...)
	}
	for _, pkg := range slices.Sorted(maps.Keys(byPkg)) {
		if out, ok := goTest(t, goTool, "", pkg, byPkg[pkg]); !ok {
			t.Fatalf("control: the kill tests of products/%s fail on the real code:\n%s", pkg, out)
		}
	}

	var run, survived []string
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			run = append(run, m.name)
			out, ok := goTest(t, goTool, mutation.Overlay(t, filepath.Join(root, "products", m.pkg, m.file), m.from, m.to), m.pkg, m.tests)
			fails := mutation.Failures(out)
			switch {
			case ok:
				survived = append(survived, m.name)
				t.Errorf("SURVIVED products/%s/%s: %s (%s passed)", m.pkg, m.file, m.bug, strings.Join(m.tests, ", "))
			case len(fails) == 0:
				t.Errorf("products/%s/%s: go test failed without a failing test (not a kill):\n%s", m.pkg, m.file, out)
			default:
				t.Logf("killed products/%s/%s: %s; by %s", m.pkg, m.file, m.bug, strings.Join(fails, ", "))
			}
		})
	}
	t.Logf("mutation score: %d/%d killed in %s", len(run)-len(survived), len(run), time.Since(start).Round(time.Second))
	if len(survived) > 0 {
		t.Errorf("surviving mutants: %s", strings.Join(survived, ", "))
	}
}

// goTest runs the named tests of products/<pkg> (with the overlay, unless
// it is ""), without -race for speed, and returns the output and whether
// they passed. Tests that match nothing never pass.
func goTest(tb testing.TB, goTool, overlay, pkg string, tests []string) (string, bool) {
	tb.Helper()
	// No vet and no DWARF: a mutant is one line, and each build's link is
	// most of the run's time.
	args := []string{"test", "-count=1", "-timeout=1m", "-vet=off", "-ldflags=-w"}
	if overlay != "" {
		args = append(args, "-overlay="+overlay)
	}
	pattern := fmt.Sprintf("^(%s)$", strings.Join(slices.Compact(slices.Sorted(slices.Values(tests))), "|"))
	args = append(args, "-run="+pattern, "./products/"+pkg)
	cmd := exec.Command(goTool, args...)
	cmd.Dir = root
	cmd.Env = mutation.Environ()
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "no tests to run") {
		tb.Fatalf("go test -run %q matched no test:\n%s", pattern, out)
	}
	return string(out), err == nil
}
