// Package mutation is the machinery of the repository's mutation runs (the
// Lua scripts' in validation/redisstore and web/redissessions, the product side's settlement in
// products/internal/mutants): a mutant is one exact snippet of a source
// file replaced by another, applied at build time through go test -overlay
// so the tree is never modified, and killed when a named test fails.
// Each run keeps its own list of mutants and how it runs go test.
package mutation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Env is the variable that turns the mutation runs on: ARBITER_MUTANTS=1.
// The runs' own go test children run with it unset.
const Env = "ARBITER_MUTANTS"

// Overlay writes path's source with from (which must occur exactly once)
// replaced by to into a temporary directory, and the go build overlay that
// puts it in place of path; it returns the overlay's path. It fails the
// test when from no longer occurs exactly once, so a list of mutants cannot
// rot silently.
func Overlay(tb testing.TB, path, from, to string) string {
	tb.Helper()
	path, err := filepath.Abs(path)
	if err != nil {
		tb.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if n := strings.Count(string(src), from); n != 1 {
		tb.Fatalf("%s contains the mutant's snippet %d times, want exactly once:\n%s", path, n, from)
	}
	tmp := tb.TempDir()
	mutated := filepath.Join(tmp, filepath.Base(path))
	if err := os.WriteFile(mutated, []byte(strings.Replace(string(src), from, to, 1)), 0o644); err != nil {
		tb.Fatal(err)
	}
	doc, err := json.Marshal(map[string]map[string]string{"Replace": {path: mutated}})
	if err != nil {
		tb.Fatal(err)
	}
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ov, doc, 0o644); err != nil {
		tb.Fatal(err)
	}
	return ov
}

// TestFuncs lists the Test functions of the test files in dir, so a run
// can check that every test a mutant names exists.
func TestFuncs(tb testing.TB, dir string) map[string]bool {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		tb.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	out := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			out[m[1]] = true
		}
	}
	return out
}

// Failures lists the innermost failing (sub)tests that go test printed, at
// most three and a count of the rest.
func Failures(out string) []string {
	var all []string
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "--- FAIL: "); ok {
			all = append(all, strings.Fields(name)[0])
		}
	}
	var leaves []string
	for _, name := range all {
		if !slices.ContainsFunc(all, func(other string) bool { return strings.HasPrefix(other, name+"/") }) {
			leaves = append(leaves, name)
		}
	}
	if len(leaves) > 3 {
		leaves = append(leaves[:3], fmt.Sprintf("and %d more", len(leaves)-3))
	}
	return leaves
}

// Environ is os.Environ without Env, for a run's go test children.
func Environ() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, Env+"=") {
			out = append(out, kv)
		}
	}
	return out
}
