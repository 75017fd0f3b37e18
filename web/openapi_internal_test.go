package web

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/arbiter-bank/arbiter/validation"
)

// specDoc is the part of openapi.yaml these tests compare with the code.
type specDoc struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas struct {
			Reason struct {
				Enum []string `yaml:"enum"`
			} `yaml:"Reason"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

func parseSpecDoc(tb testing.TB) specDoc {
	tb.Helper()
	var d specDoc
	if err := yaml.Unmarshal(openAPISpec, &d); err != nil {
		tb.Fatalf("parse openapi.yaml: %v", err)
	}
	return d
}

// TestOpenAPIListsEveryRoute compares the routes echo serves with the
// document's operations, both ways, for the API and the operational
// endpoints (the branch UI's routes are not part of the API contract).
// HEAD is not listed: every GET route has a HEAD twin (the document says
// so once), which this test checks instead.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	clients, err := NewClients([]Client{{ID: "x", Key: "k", Roles: []validation.Role{validation.RoleChecker}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Policy: validation.DefaultPolicy(), Clients: clients})
	param := regexp.MustCompile(`:([a-z_]+)`)
	served := map[string]bool{}
	gets, heads := map[string]bool{}, map[string]bool{}
	for _, r := range s.echo.Routes() {
		switch r.Method {
		case http.MethodGet:
			gets[r.Path] = true
		case http.MethodHead:
			heads[r.Path] = true
			continue
		}
		if strings.HasPrefix(r.Path, "/branch") || strings.HasSuffix(r.Path, "*") || r.Path == "/v1" || r.Method == "echo_route_any" {
			continue
		}
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	for p := range gets {
		if !heads[p] {
			t.Errorf("GET %s has no HEAD twin (add it with get in routes.go)", p)
		}
	}
	for p := range heads {
		if !gets[p] {
			t.Errorf("HEAD %s is served without GET", p)
		}
	}
	documented := map[string]bool{}
	for path, ops := range parseSpecDoc(t).Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("route %s is served but not in openapi.yaml", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("openapi.yaml documents %s, which is not served", r)
		}
	}
}

// TestOpenAPIListsEveryReason compares the Reason enum with the reasons
// the error table knows (plus internal, the fallback).
func TestOpenAPIListsEveryReason(t *testing.T) {
	want := []string{string(validation.ReasonInternal)}
	for r := range problemTypes {
		want = append(want, string(r))
	}
	got := parseSpecDoc(t).Components.Schemas.Reason.Enum
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("Reason enum = %v\nerror table = %v", got, want)
	}
}
