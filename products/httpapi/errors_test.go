package httpapi

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
)

// answeredReasons are the reasons the service answers of its own: the
// Reason constants of issuing and the reason constants of this package.
func answeredReasons(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, dir := range []string{"../issuing", "."} {
		for _, file := range sourceFiles(tb, dir) {
			for _, decl := range file.Decls {
				gen, ok := decl.(*ast.GenDecl)
				if !ok || gen.Tok != token.CONST {
					continue
				}
				for _, spec := range gen.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if !strings.HasPrefix(strings.ToLower(name.Name), "reason") || i >= len(vs.Values) {
							continue
						}
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							out = append(out, v)
						}
					}
				}
			}
		}
	}
	if len(out) < 10 {
		tb.Fatalf("found %d reasons: the constants were not found", len(out))
	}
	return out
}

// sourceFiles parses the non-test Go files of dir.
func sourceFiles(tb testing.TB, dir string) []*ast.File {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		tb.Fatal(err)
	}
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// answer is writeError's answer to err: status and problem.
func answer(tb testing.TB, err error) (int, problem) {
	tb.Helper()
	rec := httptest.NewRecorder()
	writeError(rec, httptest.NewRequest("POST", "/v1/applications", nil), slog.New(slog.NewTextHandler(io.Discard, nil)), err)
	var p problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		tb.Fatal(err)
	}
	return rec.Code, p
}

// TestEveryReasonHasItsOwnTitle: each reason the service answers has a
// title of its own, not the status text that several reasons share.
func TestEveryReasonHasItsOwnTitle(t *testing.T) {
	titles := map[string]string{} // title → reason
	for _, reason := range answeredReasons(t) {
		status, p := answer(t, &issuing.Error{Reason: reason})
		if status == http.StatusInternalServerError && reason != reasonInternal && reason != issuing.ReasonIssueFailed {
			t.Errorf("%s: status 500: the reason is missing from problemTypes", reason)
		}
		if p.Title == "" || p.Title == http.StatusText(status) {
			t.Errorf("%s: title %q is the status text, not the reason's own", reason, p.Title)
		}
		if other, ok := titles[p.Title]; ok {
			t.Errorf("%s and %s share the title %q", reason, other, p.Title)
		}
		titles[p.Title] = reason
	}
	if _, p := answer(t, io.ErrUnexpectedEOF); p.Reason != reasonInternal || p.Title != problemTypes[reasonInternal].title {
		t.Errorf("an error without a reason answers %q %q, want %q with its title", p.Reason, p.Title, reasonInternal)
	}
}

// TestArbiterRefusalKeepsArbitersTitle: a refusal passed on from arbiter
// answers arbiter's status and title, not the service's title of a reason
// of the same name.
func TestArbiterRefusalKeepsArbitersTitle(t *testing.T) {
	ae := &client.Error{Status: http.StatusConflict, Reason: client.ReasonAlreadyHoldsProduct, Title: "Customer already holds this product"}
	status, p := answer(t, &issuing.Error{Reason: string(ae.Reason), Arbiter: ae})
	if status != ae.Status || p.Title != ae.Title {
		t.Fatalf("answer = %d %q, want arbiter's %d %q", status, p.Title, ae.Status, ae.Title)
	}
}

// TestReasonsAreConstants: every issuing.Error the service builds names its
// reason with a constant, so answeredReasons sees every reason.
func TestReasonsAreConstants(t *testing.T) {
	for _, dir := range []string{"../issuing", ".", "../../cmd/productsvc"} {
		for _, file := range sourceFiles(t, dir) {
			ast.Inspect(file, func(n ast.Node) bool {
				kv, ok := n.(*ast.KeyValueExpr)
				if !ok {
					return true
				}
				if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Reason" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok {
						t.Errorf("%s: Reason: %s is a literal; declare a reason constant (and its title in problemTypes)", dir, lit.Value)
					}
				}
				return true
			})
		}
	}
}
