package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/arbiter-bank/arbiter/internal/testca"
)

// startService runs productsvc with env (over a minimal working
// configuration) until stop or the test's end, and returns its base URL and
// stop, which returns its log once run has returned.
func startService(tb testing.TB, env map[string]string) (url string, stop func() string) {
	tb.Helper()
	all := map[string]string{
		"PRODUCTSVC_ADDR": "127.0.0.1:0", "PRODUCTSVC_PRODUCT": "credit_card", "PRODUCTSVC_ID": "card-service",
		"PRODUCTSVC_ARBITER_KEY": "k", "PRODUCTSVC_ARBITER_URL": "http://127.0.0.1:1",
		"PRODUCTSVC_DB": filepath.Join(tb.TempDir(), "card.db"),
	}
	for k, v := range env {
		all[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer // written by run only until it returns
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"productsvc"}, func(k string) string { return all[k] }, pw, &stderr)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("run = %v", err)
			}
		})
		return stderr.String()
	}
	tb.Cleanup(func() { stop() })
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil {
		tb.Fatalf("productsvc did not start; log:\n%s", stop())
	}
	_, url, _ = strings.Cut(strings.TrimSpace(line), "listening on ")
	return url, stop
}

// problemOf sends req and returns the status and the problem's reason.
func problemOf(tb testing.TB, req *http.Request) (int, string, http.Header) {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Reason string `json:"reason"`
	}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			tb.Fatalf("%s %s: Content-Type %q, want application/problem+json", req.Method, req.URL.Path, ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			tb.Fatal(err)
		}
	}
	return resp.StatusCode, p.Reason, resp.Header
}

// TestCallersAuthenticate: with PRODUCTSVC_CLIENTS, applying and closing
// need a listed client's key (as at arbiter, in its file format), so that
// whoever merely reaches the service cannot burn a customer's hold with
// wrong codes; the holdings feed keeps its own key.
func TestCallersAuthenticate(t *testing.T) {
	clients := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(clients, []byte(`clients:
  - { id: branch-portal, key: "branch-portal-key-0123", roles: [checker] }
  - { id: web-app, key_sha256: "`+sha256hex("web-app-key-0123456789")+`", roles: [checker] }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	url, _ := startService(t, map[string]string{"PRODUCTSVC_CLIENTS": clients})
	req := func(method, path, key, body string) *http.Request {
		r, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		return r
	}
	tests := []struct {
		name, method, path, key, body string
		status                        int
		reason                        string
	}{
		{"otp application without a key", "POST", "/v1/applications", "", `{"customer_id":"C-1","otp":"000000"}`, 401, "unauthorized"},
		{"otp application with an unknown key", "POST", "/v1/applications", "not-a-client-key-0123", `{"customer_id":"C-1","otp":"000000"}`, 401, "unauthorized"},
		{"not a bearer key", "POST", "/v1/applications", "", `{"customer_id":"C-1","otp":"000000"}`, 401, "unauthorized"},
		{"online application without a key", "POST", "/v1/applications/online", "", `{"customer_id":"C-1"}`, 401, "unauthorized"},
		{"close without a key", "DELETE", "/v1/products/C-1", "", ``, 401, "unauthorized"},
		{"a listed key gets to the application", "POST", "/v1/applications", "branch-portal-key-0123", `{}`, 400, "invalid_request"},
		{"a listed key_sha256 gets to the application", "POST", "/v1/applications", "web-app-key-0123456789", `{}`, 400, "invalid_request"},
		{"a listed key gets to close", "DELETE", "/v1/products/C-1", "branch-portal-key-0123", ``, 404, "not_found"},
		{"the holdings feed keeps its own (here: no) key", "GET", "/v1/holdings", "", ``, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req(tt.method, tt.path, tt.key, tt.body)
			if tt.name == "not a bearer key" {
				r.Header.Set("Authorization", "Basic YnJhbmNoOnBvcnRhbA==")
			}
			status, reason, h := problemOf(t, r)
			if status != tt.status || reason != tt.reason {
				t.Fatalf("%s %s = %d %q, want %d %q", tt.method, tt.path, status, reason, tt.status, tt.reason)
			}
			if status == 401 && h.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

// TestCallersFile: an open API warns at start; a clients file is checked
// as arbiter checks it.
func TestCallersFile(t *testing.T) {
	t.Run("open API warns", func(t *testing.T) {
		_, stop := startService(t, nil)
		if log := stop(); !warnedAbout(log, "PRODUCTSVC_CLIENTS") {
			t.Fatalf("no WARN naming PRODUCTSVC_CLIENTS; log:\n%s", log)
		}
	})
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, env, wantErr string }{
		{"a short key", `clients: [{ id: a, key: short, roles: [checker] }]`, "", "shorter than 16"},
		{"an unknown field", `clients: [{ id: a, key: "0123456789abcdef", roles: [checker], colour: red }]`, "", "colour"},
		{"cert_names without a client CA", `clients: [{ id: a, cert_names: [a.internal], roles: [checker] }]`, "", "PRODUCTSVC_TLS_CLIENT_CA"},
		{"a missing file", "", "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if tc.yaml != "" {
				if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadCallers(config{ClientsFile: path})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("loadCallers = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func warnedAbout(log, what string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, what) {
			return true
		}
	}
	return false
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestCallersByCertificate: with a client CA, a client of the file may be
// identified by its verified certificate's names instead of a key; a
// certificate the CA signed but the file does not name is refused.
func TestCallersByCertificate(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	ca.Server(t, "productsvc", testca.Names{}).CopyTo(t, filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls-key.pem"))
	clients := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(clients, []byte(`clients:
  - { id: branch-portal, cert_names: ["spiffe://bank.test/branch-portal"], roles: [checker] }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	url, _ := startService(t, map[string]string{"PRODUCTSVC_CLIENTS": clients,
		"PRODUCTSVC_TLS_CERT": filepath.Join(dir, "tls.pem"), "PRODUCTSVC_TLS_KEY": filepath.Join(dir, "tls-key.pem"),
		"PRODUCTSVC_TLS_CLIENT_CA": ca.CertFile})
	for _, tc := range []struct {
		name, uri string
		status    int
		reason    string
	}{
		{"a listed certificate", "spiffe://bank.test/branch-portal", 400, "invalid_request"},
		{"an unlisted certificate", "spiffe://bank.test/intruder", 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := ca.Client(t, tc.name, testca.Names{URIs: []string{tc.uri}})
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: ca.Pool(), Certificates: []tls.Certificate{leaf.TLS}}}}
			defer hc.CloseIdleConnections()
			req, err := http.NewRequest("POST", url+"/v1/applications", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct {
				Reason string `json:"reason"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || p.Reason != tc.reason {
				t.Fatalf("POST /v1/applications = %d %q, want %d %q", resp.StatusCode, p.Reason, tc.status, tc.reason)
			}
		})
	}
}
