package deploy_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// archDoc is the handbook page whose import tables this test enforces.
var archDoc = filepath.Join(repoRoot, "docs", "architecture.md")

// goPackage is what `go list -json` says of one package.
type goPackage struct {
	ImportPath   string
	Module       *struct{ Path string }
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// importGraph is the module's packages by path relative to the module
// ("validation/redisstore"), the module's own root being ".".
type importGraph struct {
	module string
	pkgs   map[string]goPackage
}

func listPackages(t *testing.T) importGraph {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := importGraph{pkgs: map[string]goPackage{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Module != nil {
			g.module = p.Module.Path
		}
		g.pkgs[p.ImportPath] = p
	}
	if g.module == "" {
		t.Fatal("go list named no module")
	}
	rel := map[string]goPackage{}
	for path, p := range g.pkgs {
		rel[g.short(path)] = p
	}
	g.pkgs = rel
	return g
}

// short turns one of the module's import paths into the doc's spelling;
// other paths are returned as they are.
func (g importGraph) short(path string) string {
	if path == g.module {
		return "."
	}
	if s, ok := strings.CutPrefix(path, g.module+"/"); ok {
		return s
	}
	return path
}

// covers reports whether path is pattern or, for "x/...", x or under it;
// a library pattern such as "go.opentelemetry.io/otel/sdk" also covers its
// subpackages, as the doc's "or any package under it" says.
func covers(pattern, path string, subpackages bool) bool {
	base, wild := strings.CutSuffix(pattern, "/...")
	if path == base {
		return true
	}
	return (wild || subpackages) && strings.HasPrefix(path, base+"/")
}

func coversAny(patterns []string, path string, subpackages bool) bool {
	for _, p := range patterns {
		if covers(p, path, subpackages) {
			return true
		}
	}
	return false
}

// tableRows returns the cells of every row of the markdown table whose
// header row starts with header, each cell as its list of `code` spans.
func tableRows(t *testing.T, doc, header string) [][][]string {
	t.Helper()
	i := strings.Index(doc, "\n"+header)
	if i < 0 {
		t.Fatalf("%s has no table headed %q", archDoc, header)
	}
	code := regexp.MustCompile("`([^`]+)`")
	var rows [][][]string
	lines := strings.Split(doc[i+1:], "\n")
	for _, line := range lines[2:] { // past the header and the |---| line
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		var row [][]string
		for _, c := range cells {
			var spans []string
			for _, m := range code.FindAllStringSubmatch(c, -1) {
				spans = append(spans, m[1])
			}
			row = append(row, spans)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		t.Fatalf("the table headed %q in %s has no rows", header, archDoc)
	}
	return rows
}

// packagesMatching returns the module's packages a doc pattern names, and
// fails the test when it names none: a row about a package that does not
// exist would pass for nothing.
func (g importGraph) packagesMatching(t *testing.T, pattern string) []string {
	t.Helper()
	var out []string
	for p := range g.pkgs {
		if covers(pattern, p, false) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Errorf("%s names package %s, which go list does not know", archDoc, pattern)
	}
	slices.Sort(out)
	return out
}

// isLocal reports whether a doc pattern names one of arbiter's packages
// (no dot in its first element) rather than a library or the standard library.
func isLocal(pattern string, g importGraph) bool {
	first, _, _ := strings.Cut(pattern, "/")
	if strings.Contains(first, ".") {
		return false
	}
	// A standard-library path such as net/http has no dot either: it is
	// local only if the module has such a package.
	for p := range g.pkgs {
		if covers(pattern, p, false) {
			return true
		}
	}
	return false
}

// TestImportRulesMatchGoList reads the import tables of docs/architecture.md
// and checks every claim in them against go list, so that a sentence such
// as "the only importer of go-redis" stays true or fails CI.
func TestImportRulesMatchGoList(t *testing.T) {
	raw, err := os.ReadFile(archDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	g := listPackages(t)

	t.Run("may import, must not import", func(t *testing.T) {
		for _, row := range tableRows(t, doc, "| package | may import") {
			if len(row) < 3 || len(row[0]) != 1 {
				t.Fatalf("malformed row %q", row)
			}
			for _, pkg := range g.packagesMatching(t, row[0][0]) {
				p := g.pkgs[pkg]
				for _, imp := range p.Imports {
					s := g.short(imp)
					if s != imp && s != pkg && !coversAny(row[1], s, false) && !covers(row[0][0], s, false) {
						t.Errorf("%s imports %s; %s says it may import only %v", pkg, s, archDoc, row[1])
					}
					if coversAny(row[2], s, true) {
						t.Errorf("%s imports %s, which %s says it must not", pkg, s, archDoc)
					}
				}
			}
		}
	})

	t.Run("only importers", func(t *testing.T) {
		for _, row := range tableRows(t, doc, "| library | only importers") {
			if len(row) < 3 || len(row[0]) != 1 {
				t.Fatalf("malformed row %q", row)
			}
			lib := row[0][0]
			local := isLocal(lib, g)
			imports := func(self string, paths []string) bool {
				for _, imp := range paths {
					s := g.short(imp)
					if s == self {
						continue // an external test package importing its own package
					}
					if local && s != imp && covers(lib, s, false) || !local && s == imp && covers(lib, s, true) {
						return true
					}
				}
				return false
			}
			var importers, testImporters []string
			for name, p := range g.pkgs {
				switch {
				case imports(name, p.Imports):
					importers = append(importers, name)
				case imports(name, append(slices.Clip(p.TestImports), p.XTestImports...)):
					testImporters = append(testImporters, name)
				}
			}
			check := func(what string, got, want []string) {
				slices.Sort(got)
				for _, name := range got {
					if !coversAny(want, name, false) {
						t.Errorf("%s: %s imports it (%s); %s lists only %v", lib, name, what, archDoc, want)
					}
				}
				for _, w := range want {
					if !slices.ContainsFunc(got, func(name string) bool { return covers(w, name, false) }) {
						t.Errorf("%s: %s lists %s among its importers (%s), but go list finds %v", lib, archDoc, w, what, got)
					}
				}
			}
			check("outside tests", importers, row[1])
			check("in tests only", testImporters, row[2])
		}
	})
}
