package web_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/reconcile/redisrecon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/web"
)

// Keys of the test clients.
const (
	checkerKey = "test-checker-key-0001"
	cardKey    = "test-card-key-000001"
	loanKey    = "test-loan-key-000001"
	adminKey   = "test-admin-key-00001"
	backKey    = "test-backoffice-key1" // redeemer role only, of no product
)

// api is a real arbiter HTTP server over a real redis-server.
type api struct {
	url    string
	issuer *tokens.Issuer
	key    ed25519.PrivateKey // the issuer's signing key, for tests that forge with it
	redis  *redistest.Server
	client *http.Client
	logs   *lockedWriter
}

type apiOption func(*web.Config, *string)

func withPolicy(yaml string) apiOption {
	return func(_ *web.Config, p *string) { *p = yaml }
}

func newAPI(tb testing.TB, opts ...apiOption) *api {
	tb.Helper()
	srv := redistest.MustStartRedis(tb)
	a := newAPIOn(tb, srv.Client(tb), opts...)
	a.redis = srv
	return a
}

// newAPIOn is newAPI on a given Redis client (a cluster client, say); its
// redis field is nil.
func newAPIOn(tb testing.TB, rdb redis.UniversalClient, opts ...apiOption) *api {
	tb.Helper()
	store := redisstore.New(rdb, redisstore.Options{})
	if err := store.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	clients, err := clientauth.Parse([]byte(`clients:
  - { id: branch-portal, key: ` + checkerKey + `, roles: [checker] }
  - { id: card-service, key: ` + cardKey + `, roles: [checker, redeemer] }
  - { id: loan-service, key: ` + loanKey + `, roles: [checker, redeemer] }
  - { id: ops, key: ` + adminKey + `, roles: [admin] }
  - { id: backoffice, key: ` + backKey + `, roles: [redeemer] }
agents:
` + agentsYAML() + `
`))
	if err != nil {
		tb.Fatal(err)
	}
	logs := &lockedWriter{w: &bytes.Buffer{}}
	cfg := web.Config{
		Tokens: issuer, Clients: clients, Ready: store.Ping, ParsePolicy: policyfile.Parse,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	}
	policyYAML := policyfile.DefaultYAML
	for _, o := range opts {
		o(&cfg, &policyYAML)
	}
	policy, err := policyfile.Parse([]byte(policyYAML))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Policy = policy
	// An option may pre-set a *validation.Service to configure it (ratings);
	// the harness gives it the store and the policy.
	svc, _ := cfg.Service.(*validation.Service)
	if svc == nil {
		svc = &validation.Service{}
	}
	svc.Store, svc.Policy = store, policy
	cfg.Service = svc
	// Likewise a *reconcile.Reconciler (its feeds); by default one with none.
	rec, _ := cfg.Reconciler.(*reconcile.Reconciler)
	if rec == nil {
		rec = &reconcile.Reconciler{}
	}
	rec.Ledger, rec.Store, rec.Policy = store, redisrecon.New(rdb, store), policy
	cfg.Reconciler = rec
	ts := httptest.NewServer(web.New(cfg))
	tb.Cleanup(ts.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	tb.Cleanup(tr.CloseIdleConnections)
	return &api{url: ts.URL, issuer: issuer, key: key, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, logs: logs}
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r reply) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// send makes one request and reads the whole answer: body is JSON-encoded
// unless it is a string; header pairs follow it.
func send(tb testing.TB, c *http.Client, method, url string, body any, header ...string) (*http.Response, []byte) {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, raw
}

// do sends a request with an API key ("" for none).
func (a *api) do(tb testing.TB, method, path, key string, body any, header ...string) reply {
	tb.Helper()
	if key != "" {
		header = append([]string{"Authorization", "Bearer " + key}, header...)
	}
	return a.doWith(tb, a.client, method, path, body, header...)
}

// agentsYAML lists uiAgents (ana, bruno, …) for a clients file.
func agentsYAML() string {
	var b strings.Builder
	for _, ag := range uiAgents() {
		fmt.Fprintf(&b, "  - { username: %s, password_bcrypt: %q, branch: %s }\n", ag.Username, ag.PasswordBcrypt, ag.Branch)
	}
	return b.String()
}

// caller sends one request as some client, answering the decoded reply.
type caller func(tb testing.TB, method, path string, body any) reply

// bearer calls with an API key.
func (a *api) bearer(key string) caller {
	return func(tb testing.TB, method, path string, body any) reply {
		tb.Helper()
		return a.do(tb, method, path, key, body)
	}
}

// agent signs a branch agent in and calls as the page does: with the
// session cookie, the CSRF token and a same-origin Sec-Fetch-Site.
func (a *api) agent(tb testing.TB, user, password string) caller {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	hc := *a.client
	hc.Jar = jar
	r := a.doWith(tb, &hc, "POST", "/branch/session", map[string]string{"username": user, "password": password})
	wantStatus(tb, r, http.StatusOK)
	csrf := r.str("csrf_token")
	return func(tb testing.TB, method, path string, body any) reply {
		tb.Helper()
		return a.doWith(tb, &hc, method, path, body, web.CSRFHeader, csrf, "Sec-Fetch-Site", "same-origin")
	}
}

func (a *api) doWith(tb testing.TB, c *http.Client, method, path string, body any, header ...string) reply {
	tb.Helper()
	resp, raw := send(tb, c, method, a.url+path, body, header...)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			tb.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
		}
	}
	return r
}

// wantStatus fails unless the reply has the status (and, for errors, is a
// problem document with the reason).
func wantStatus(tb testing.TB, r reply, status int, reason ...validation.Reason) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	if status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			tb.Fatalf("error Content-Type = %q, want application/problem+json", ct)
		}
		for _, f := range []string{"type", "title", "detail", "reason"} {
			if r.str(f) == "" {
				tb.Fatalf("problem lacks %q: %s", f, r.raw)
			}
		}
		if r.body["status"] != float64(status) {
			tb.Fatalf("problem status = %v, want %d", r.body["status"], status)
		}
	}
	if len(reason) > 0 && r.str("reason") != string(reason[0]) {
		tb.Fatalf("reason = %q, want %q; body %s", r.str("reason"), reason[0], r.raw)
	}
}

func (a *api) check(tb testing.TB, key, customer, product string) reply {
	tb.Helper()
	return a.do(tb, "POST", "/v1/checks", key, map[string]string{"customer_id": customer, "product": product})
}

func (a *api) mustCheck(tb testing.TB, customer, product string) reply {
	tb.Helper()
	r := a.check(tb, checkerKey, customer, product)
	wantStatus(tb, r, http.StatusCreated)
	return r
}

// lockedWriter serialises log writes, so tests can read logs safely.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
