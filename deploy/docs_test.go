package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsLinksAndPaths keeps README.md's map honest: every relative link
// in README.md and docs/*.md names a file of the repository, and every
// repository path README.md writes in `code` (web/handlers.go,
// validation/redisstore/lua/check.lua, cmd/arbiter-load/...) exists, so a
// moved or renamed file fails here instead of misleading a newcomer.
func TestDocsLinksAndPaths(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(repoRoot, "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)|src="([^"]+)"`)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(raw), -1) {
			target := m[1] + m[2]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			abs, err := filepath.Abs(filepath.Join(filepath.Dir(doc), target))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(abs, root+string(filepath.Separator)) {
				t.Errorf("%s links to %s, outside the repository", doc, m[0])
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, target)
			}
		}
	}

	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	top := map[string]bool{}
	entries, err := os.ReadDir(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			top[e.Name()] = true
		}
	}
	code := regexp.MustCompile("`([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*)`")
	checked := 0
	for _, m := range code.FindAllStringSubmatch(string(readme), -1) {
		path := strings.TrimSuffix(m[1], "/...")
		first, _, _ := strings.Cut(path, "/")
		if !top[first] {
			continue // lua/check.lua inside a sentence about redisstore, a URL path, ...
		}
		checked++
		if _, err := os.Stat(filepath.Join(repoRoot, path)); err != nil {
			t.Errorf("README.md names %s, which does not exist", m[1])
		}
	}
	if checked < 10 {
		t.Errorf("README.md names only %d repository paths in code; did the pattern stop matching?", checked)
	}
}
