package deploy_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the repository's top folder, seen from this one.
const repoRoot = ".."

// TestCIRequiresWhatTestsMaySkip guards against a CI run that passes by
// skipping: every environment variable a test reads to turn a missing tool
// into a failure (ARBITER_REQUIRE_*) must be exported by .ci/run, and no
// test may depend on a variable that .ci/run does not set itself (such as
// CI, which only some CI systems set).
func TestCIRequiresWhatTestsMaySkip(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(repoRoot, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*export\s+(.+)$`).FindAllStringSubmatch(string(script), -1) {
		for _, f := range strings.Fields(m[1]) {
			name, _, _ := strings.Cut(f, "=")
			exported[name] = true
		}
	}
	requireVar := regexp.MustCompile(`ARBITER_REQUIRE_[A-Z0-9_]+`)
	ciVar := regexp.MustCompile(`Getenv\("CI"\)`)
	found := 0
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != repoRoot {
			return filepath.SkipDir // .git, .ci
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, name := range requireVar.FindAllString(string(src), -1) {
			found++
			if !exported[name] {
				t.Errorf("%s reads %s, which .ci/run does not export: CI would skip instead of fail", path, name)
			}
		}
		if ciVar.Match(src) && !exported["CI"] {
			t.Errorf("%s reads CI, which .ci/run does not export: under .ci/run the test skips", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no ARBITER_REQUIRE_* variable found in the repository: the walk is broken")
	}
}

// TestK6SummariesIgnored: every k6 scenario's default summary file
// (summary-<scenario>.json, written where k6 runs) is git-ignored, wherever
// the script is run from, so summaries do not pile up in the tree.
func TestK6SummariesIgnored(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed: .gitignore not checked")
	}
	if err := exec.Command(git, "-C", repoRoot, "rev-parse", "--git-dir").Run(); err != nil {
		t.Skip("not a git checkout: .gitignore not checked")
	}
	scripts, err := filepath.Glob("k6/*.js")
	if err != nil {
		t.Fatal(err)
	}
	var scenarios []string
	for _, s := range scripts {
		src, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`summarize\('([a-z0-9_-]+)'`).FindAllStringSubmatch(string(src), -1) {
			scenarios = append(scenarios, m[1])
		}
	}
	if len(scenarios) < 3 {
		t.Fatalf("found scenarios %v in deploy/k6, want checks, contention and soak", scenarios)
	}
	for _, sc := range scenarios {
		for _, dir := range []string{"", "deploy/k6/", "deploy/"} {
			path := dir + "summary-" + sc + ".json"
			// --no-index: judge the path by the ignore rules alone.
			if err := exec.Command(git, "-C", repoRoot, "check-ignore", "-q", "--no-index", path).Run(); err != nil {
				t.Errorf("%s is not git-ignored (git check-ignore: %v)", path, err)
			}
		}
	}
}
