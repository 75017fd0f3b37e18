package web_test

import (
	"net/http"
	"testing"
)

// TestWrongMethodIs405: a known path asked with a method none of its
// routes has answers 405 method_not_allowed with an Allow header, inside
// the /v1 and /branch groups as outside them; an unknown path stays 404.
func TestWrongMethodIs405(t *testing.T) {
	a := newAPI(t)
	cases := []struct {
		method, path, key string
		status            int
		allow             string
	}{
		{http.MethodPatch, "/v1/checks", checkerKey, http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/checks", checkerKey, http.StatusMethodNotAllowed, "POST"},
		{http.MethodPatch, "/v1/checks/chk_aaaaaaaaaaaaaaaaaaaa_C-1", checkerKey, http.StatusMethodNotAllowed, "GET, HEAD, DELETE"},
		{http.MethodPost, "/v1/customers/C-1/products/credit_card", adminKey, http.StatusMethodNotAllowed, "PUT, DELETE"},
		{http.MethodPatch, "/branch/session", "", http.StatusMethodNotAllowed, "GET, HEAD, POST, DELETE"},
		{http.MethodPatch, "/healthz", "", http.StatusMethodNotAllowed, "OPTIONS, GET, HEAD"}, // echo's own, outside groups
		{http.MethodGet, "/v1/nothing-here", checkerKey, http.StatusNotFound, ""},
		{http.MethodPatch, "/v1/checks", "", http.StatusUnauthorized, ""}, // authentication still comes first
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := a.do(t, tc.method, tc.path, tc.key, nil)
			if got, want := r.status, tc.status; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, r.raw)
			}
			if got, want := r.header.Get("Allow"), tc.allow; got != want {
				t.Errorf("Allow = %q, want %q", got, want)
			}
			if tc.status == http.StatusMethodNotAllowed {
				if got, want := r.str("reason"), "method_not_allowed"; got != want {
					t.Errorf("reason = %q, want %q", got, want)
				}
				if got, want := r.header.Get("Content-Type"), "application/problem+json"; got != want {
					t.Errorf("Content-Type = %q, want %q", got, want)
				}
			}
		})
	}
}
