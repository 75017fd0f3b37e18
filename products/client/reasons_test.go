package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestEveryServerReasonHasATypedError compares the client's reasons with
// arbiter's: the Reason enum of web/openapi.yaml, which web's tests hold
// equal to the server's error table. Every server reason needs a Reason
// constant and an Err sentinel here, and the client invents none besides
// ReasonUnexpected, so a reason added to the server without its client
// error fails CI.
func TestEveryServerReasonHasATypedError(t *testing.T) {
	raw, err := os.ReadFile("../../web/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Components struct {
			Schemas struct {
				Reason struct {
					Enum []string `yaml:"enum"`
				} `yaml:"Reason"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	server := spec.Components.Schemas.Reason.Enum
	if len(server) < 20 {
		t.Fatalf("openapi.yaml lists %d reasons: the enum was not found", len(server))
	}
	consts, sentinels := declaredReasons(t)
	for _, r := range server {
		if !slices.Contains(consts, r) {
			t.Errorf("server reason %q has no Reason constant in errors.go", r)
		}
		if !slices.Contains(sentinels, r) {
			t.Errorf("server reason %q has no Err sentinel in errors.go", r)
		}
	}
	for _, r := range consts {
		if r != string(ReasonUnexpected) && !slices.Contains(server, r) {
			t.Errorf("client reason %q is not one the server documents", r)
		}
	}
}

// declaredReasons parses errors.go: the values of its Reason constants, and
// the reasons of its &Error{Reason: ...} sentinels.
func declaredReasons(tb testing.TB) (consts, sentinels []string) {
	tb.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		tb.Fatal(err)
	}
	values := map[string]string{} // constant name -> value
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, s := range g.Specs {
			v, ok := s.(*ast.ValueSpec)
			if !ok || len(v.Values) != len(v.Names) {
				continue
			}
			for i, name := range v.Names {
				switch x := v.Values[i].(type) {
				case *ast.BasicLit: // ReasonX Reason = "x"
					if s, err := strconv.Unquote(x.Value); err == nil && g.Tok == token.CONST {
						values[name.Name] = s
						consts = append(consts, s)
					}
				case *ast.UnaryExpr: // ErrX = &Error{Reason: ReasonX}
					lit, ok := x.X.(*ast.CompositeLit)
					if !ok {
						continue
					}
					for _, el := range lit.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok && kv.Key.(*ast.Ident).Name == "Reason" {
							if id, ok := kv.Value.(*ast.Ident); ok {
								sentinels = append(sentinels, id.Name)
							}
						}
					}
				}
			}
		}
	}
	for i, name := range sentinels {
		sentinels[i] = values[name]
	}
	return consts, sentinels
}
