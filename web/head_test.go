package web_test

import (
	"io"
	"net/http"
	"testing"
)

// TestHeadAnswersLikeGet: HEAD on every GET route answers what GET
// answers, headers included, without a body; never 404 or 405.
func TestHeadAnswersLikeGet(t *testing.T) {
	a := newAPI(t)
	held := a.mustCheck(t, "C-head", "credit_card")
	paths := []struct{ path, key string }{
		{"/healthz", ""},
		{"/readyz", ""},
		{"/.well-known/jwks.json", ""},
		{"/openapi.yaml", ""},
		{"/metrics", ""},
		{"/v1/ping", checkerKey},
		{"/v1/checks/" + held.str("check_id"), checkerKey},
		{"/v1/checks/chk_aaaaaaaaaaaaaaaaaaaa_C-head", checkerKey}, // an error answers alike too
		{"/v1/customers/C-head", checkerKey},
		{"/v1/customers/C-head/audit", checkerKey},
		{"/v1/customers/C-head/eligibility?product=personal_loan", checkerKey},
		{"/v1/customers/C-head", ""}, // 401
		{"/branch", ""},
		{"/branch/", ""},
		{"/branch/app.js", ""},
		{"/branch/session", ""},
	}
	noRedirect := &http.Client{Transport: a.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(method, path, key string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, a.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	for _, p := range paths {
		t.Run(p.path, func(t *testing.T) {
			get, _ := fetch("GET", p.path, p.key)
			head, body := fetch("HEAD", p.path, p.key)
			if got, want := head.StatusCode, get.StatusCode; got != want {
				t.Fatalf("HEAD %s = %d, want GET's %d (reason %s)", p.path, got, want, head.Header.Get("Content-Type"))
			}
			if got, want := head.Header.Get("Content-Type"), get.Header.Get("Content-Type"); got != want {
				t.Errorf("HEAD Content-Type = %q, want GET's %q", got, want)
			}
			if len(body) != 0 {
				t.Errorf("HEAD answered a body of %d bytes", len(body))
			}
		})
	}
}
