package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/web"
	"github.com/arbiter-bank/arbiter/web/redissessions"
)

// Credentials of the branch test server.
const (
	uiAgent        = "ana"
	uiPassword     = "correct horse battery"
	uiBranch       = "Lisbon-01"
	uiCardKey      = "test-card-service-key"
	uiLoanKey      = "test-loan-service-key"
	uiCheckerKey   = "test-branch-portal-key"
	uiOtherAgent   = "bruno"
	uiOtherPasswrd = "staple"
)

// uiAgents are hashed once per test binary, at bcrypt's lowest cost.
var uiAgents = sync.OnceValue(func() []web.Agent {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		return string(h)
	}
	agents := []web.Agent{
		{Username: uiAgent, PasswordBcrypt: hash(uiPassword), Branch: uiBranch},
		{Username: uiOtherAgent, PasswordBcrypt: hash(uiOtherPasswrd), Branch: "Porto-02"},
	}
	// Known names cost a cheap comparison; unknown ones the dummy cost-10 hash.
	for _, name := range uiClerks {
		agents = append(agents, web.Agent{Username: name, PasswordBcrypt: hash("clerk"), Branch: "Faro-03"})
	}
	return agents
})

// uiClerks are extra agents, so throttle tests can fail sign-ins for many
// usernames without the cost of unknown ones.
var uiClerks = []string{"clerk1", "clerk2", "clerk3", "clerk4", "clerk5"}

// uiEnv is a real arbiter HTTP server over a real redis-server, with the
// web layer's clock (sessions, throttles) shiftable by Advance.
type uiEnv struct {
	URL    string
	Server *httptest.Server
	Redis  *redis.Client // the server's Redis: store and sessions
	offset atomic.Int64
}

// Advance moves the web layer's clock forward.
func (e *uiEnv) Advance(d time.Duration) { e.offset.Add(int64(d)) }

func (e *uiEnv) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// startUI starts the server; mod may change the config, and tls serves it
// over HTTPS.
func startUI(tb testing.TB, useTLS bool, mod func(*web.Config)) *uiEnv {
	tb.Helper()
	return startUIOn(tb, redistest.MustStartRedis(tb).Client(tb), useTLS, mod)
}

// startUIOn is startUI on a given Redis, which several servers may share
// as arbiter instances do.
func startUIOn(tb testing.TB, rdb *redis.Client, useTLS bool, mod func(*web.Config)) *uiEnv {
	tb.Helper()
	store := redisstore.New(rdb, redisstore.Options{})
	policy := validation.DefaultPolicy()
	key, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	clients, err := web.NewClients([]web.Client{
		{ID: "branch-portal", Key: uiCheckerKey, Roles: []validation.Role{validation.RoleChecker}},
		{ID: "card-service", Key: uiCardKey, Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}},
		{ID: "loan-service", Key: uiLoanKey, Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}},
	}, uiAgents())
	if err != nil {
		tb.Fatal(err)
	}
	env := &uiEnv{Redis: rdb}
	cfg := web.Config{
		Service: &validation.Service{Store: store, Policy: policy},
		Tokens:  issuer, Policy: policy, Clients: clients,
		Now:    env.now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Sessions in Redis, as arbiter runs them (the API harness keeps
		// web's in-memory default, so both stores are exercised).
		Sessions: redissessions.New(rdb, redissessions.Options{}),
	}
	if mod != nil {
		mod(&cfg)
	}
	if useTLS {
		env.Server = httptest.NewTLSServer(web.New(cfg))
	} else {
		env.Server = httptest.NewServer(web.New(cfg))
	}
	tb.Cleanup(env.Server.Close)
	env.URL = env.Server.URL
	return env
}

// uiClient is a browser-like HTTP client: a cookie jar, and the CSRF token
// of its session once signed in.
type uiClient struct {
	env  *uiEnv
	http *http.Client
	csrf string
}

func (e *uiEnv) client(tb testing.TB) *uiClient {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	hc := *e.Server.Client() // a copy: the server's client is shared
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &uiClient{env: e, http: &hc}
}

type uiResponse struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// do sends a request; header pairs follow the body. The CSRF token is sent
// only when given as a header pair, so tests choose.
func (c *uiClient) do(tb testing.TB, method, path string, body any, header ...string) uiResponse {
	tb.Helper()
	resp, raw := send(tb, c.http, method, c.env.URL+path, body, header...)
	out := uiResponse{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") && len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			tb.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return out
}

// signIn signs in and keeps the CSRF token; it fails the test unless 200.
func (c *uiClient) signIn(tb testing.TB, user, password string) uiResponse {
	tb.Helper()
	r := c.do(tb, http.MethodPost, "/branch/session", map[string]string{"username": user, "password": password})
	if r.Status != http.StatusOK {
		tb.Fatalf("sign in %s: status %d, body %s", user, r.Status, r.Raw)
	}
	c.csrf, _ = r.Body["csrf_token"].(string)
	if c.csrf == "" {
		tb.Fatalf("sign in: no csrf_token in %s", r.Raw)
	}
	return r
}

func (c *uiClient) sessionCookie(tb testing.TB) *http.Cookie {
	tb.Helper()
	u, _ := url.Parse(c.env.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		if strings.Contains(ck.Name, "arbiter_session") {
			return ck
		}
	}
	return nil
}

func setCookieNamed(tb testing.TB, r uiResponse, name string) *http.Cookie {
	tb.Helper()
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	tb.Fatalf("no Set-Cookie %s in %v", name, r.Header.Values("Set-Cookie"))
	return nil
}

func TestBranchPage(t *testing.T) {
	env := startUI(t, false, nil)
	c := env.client(t)

	t.Run("serves the page with strict security headers", func(t *testing.T) {
		r := c.do(t, http.MethodGet, "/branch/", nil)
		if got, want := r.Status, http.StatusOK; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		csp := r.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "http") {
			t.Errorf("CSP %q allows inline code or another origin", csp)
		}
		for h, want := range map[string]string{
			"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
			"X-Content-Type-Options": "nosniff", "Content-Type": "text/html; charset=utf-8",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
	})

	t.Run("page has no inline script or style and loads nothing from elsewhere", func(t *testing.T) {
		page := string(c.do(t, http.MethodGet, "/branch/", nil).Raw)
		for rest := page; ; {
			i := strings.Index(rest, "<script")
			if i < 0 {
				break
			}
			tag := rest[i : i+strings.Index(rest[i:], ">")+1]
			if !strings.Contains(tag, ` src="`) || !strings.Contains(rest[i:], tag+"</script>") {
				t.Errorf("inline script: %s", tag)
			}
			rest = rest[i+len(tag):]
		}
		for _, bad := range []string{" style=", " onclick=", " onload=", "<style", "http://", "https://", "//cdn"} {
			if strings.Contains(page, bad) {
				t.Errorf("page contains %q", bad)
			}
		}
		for _, asset := range []string{"app.js", "app.css"} {
			body := string(c.do(t, http.MethodGet, "/branch/"+asset, nil).Raw)
			if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "innerHTML") {
				t.Errorf("%s refers to another origin or uses innerHTML", asset)
			}
		}
	})

	t.Run("assets revalidate by ETag", func(t *testing.T) {
		r := c.do(t, http.MethodGet, "/branch/app.js", nil)
		if got, want := r.Status, http.StatusOK; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/javascript") {
			t.Errorf("Content-Type = %q, want text/javascript", got)
		}
		etag := r.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		if got, want := c.do(t, http.MethodGet, "/branch/app.js", nil, "If-None-Match", etag).Status, http.StatusNotModified; got != want {
			t.Errorf("revalidation status = %d, want %d", got, want)
		}
	})

	t.Run("redirects /branch and 404s unknown files", func(t *testing.T) {
		r := c.do(t, http.MethodGet, "/branch", nil)
		if got, want := r.Status, http.StatusMovedPermanently; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if got, want := r.Header.Get("Location"), "/branch/"; got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
		if got, want := c.do(t, http.MethodGet, "/branch/../go.mod", nil).Status, http.StatusNotFound; got != want {
			t.Errorf("status of a missing file = %d, want %d", got, want)
		}
	})
}

func TestBranchSessionCookie(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tls        bool
		secureFlag bool
		cookie     string
		secure     bool
	}{
		{name: "plain HTTP", cookie: "arbiter_session"},
		{name: "TLS", tls: true, cookie: "__Host-arbiter_session", secure: true},
		{name: "TLS ended at a proxy", secureFlag: true, cookie: "__Host-arbiter_session", secure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startUI(t, tc.tls, func(c *web.Config) { c.SecureCookies = tc.secureFlag })
			c := env.client(t)
			r := c.do(t, http.MethodPost, "/branch/session", map[string]string{"username": uiAgent, "password": uiPassword})
			if got, want := r.Status, http.StatusOK; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, r.Raw)
			}
			ck := setCookieNamed(t, r, tc.cookie)
			if !ck.HttpOnly {
				t.Error("cookie is not HttpOnly")
			}
			if got, want := ck.SameSite, http.SameSiteStrictMode; got != want {
				t.Errorf("SameSite = %v, want %v", got, want)
			}
			if got, want := ck.Secure, tc.secure; got != want {
				t.Errorf("Secure = %v, want %v", got, want)
			}
			if got, want := ck.Path, "/"; got != want {
				t.Errorf("Path = %q, want %q", got, want)
			}
			if ck.MaxAge != 0 || !ck.Expires.IsZero() {
				t.Errorf("cookie outlives the browser: Max-Age %d, Expires %v", ck.MaxAge, ck.Expires)
			}
			if got, want := r.Body["username"], uiAgent; got != want {
				t.Errorf("username = %v, want %v", got, want)
			}
			if got, want := r.Body["branch"], uiBranch; got != want {
				t.Errorf("branch = %v, want %v", got, want)
			}
		})
	}
}

func TestBranchSessionActsAsAgent(t *testing.T) {
	env := startUI(t, false, nil)
	c := env.client(t)
	c.signIn(t, uiAgent, uiPassword)
	check := map[string]string{"customer_id": "C-7", "product": "credit_card"}

	t.Run("refuses a state change without the CSRF token", func(t *testing.T) {
		for _, h := range [][]string{nil, {web.CSRFHeader, "wrong"}, {web.CSRFHeader, c.csrf, "Origin", "https://evil.example"}, {web.CSRFHeader, c.csrf, "Sec-Fetch-Site", "cross-site"}} {
			r := c.do(t, http.MethodPost, "/v1/checks", check, h...)
			if got, want := r.Status, http.StatusForbidden; got != want {
				t.Fatalf("headers %v: status = %d, want %d (%s)", h, got, want, r.Raw)
			}
		}
		r := c.do(t, http.MethodGet, "/v1/customers/C-7", nil)
		if got, want := r.Status, http.StatusOK; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if r.Body["hold"] != nil {
			t.Fatalf("a refused request placed a hold: %s", r.Raw)
		}
	})

	t.Run("checks as the agent, recorded in the audit log", func(t *testing.T) {
		r := c.do(t, http.MethodPost, "/v1/checks", check, web.CSRFHeader, c.csrf, "Sec-Fetch-Site", "same-origin")
		if got, want := r.Status, http.StatusCreated; got != want {
			t.Fatalf("status = %d, want %d (%s)", got, want, r.Raw)
		}
		if got, want := r.Body["placed_by"], web.BranchClientID; got != want {
			t.Errorf("placed_by = %v, want %v", got, want)
		}
		if got, want := r.Body["agent_id"], uiAgent; got != want {
			t.Errorf("agent_id = %v, want %v", got, want)
		}
		if got, want := r.Header.Get("Cache-Control"), "no-store"; got != want {
			t.Errorf("Cache-Control = %q, want %q", got, want)
		}
		bearer := env.client(t)
		a := bearer.do(t, http.MethodGet, "/v1/customers/C-7/audit", nil, "Authorization", "Bearer "+uiCheckerKey)
		events, _ := a.Body["events"].([]any)
		if len(events) == 0 {
			t.Fatalf("no audit events: %s", a.Raw)
		}
		ev := events[0].(map[string]any)
		if ev["type"] != "checked" || ev["actor"] != web.BranchClientID || ev["agent"] != uiAgent {
			t.Errorf("audit event = %v, want checked by %s for %s", ev, web.BranchClientID, uiAgent)
		}
	})

	t.Run("holds the checker role only", func(t *testing.T) {
		r := c.do(t, http.MethodPost, "/v1/redemptions", map[string]string{"customer_id": "C-7", "product": "credit_card", "otp": "123456"}, web.CSRFHeader, c.csrf)
		if got, want := r.Status, http.StatusForbidden; got != want {
			t.Fatalf("redeem through the UI session: status = %d, want %d (%s)", got, want, r.Raw)
		}
	})

	t.Run("a bearer key needs no CSRF token, even beside a cookie", func(t *testing.T) {
		r := c.do(t, http.MethodPost, "/v1/checks", map[string]string{"customer_id": "C-8", "product": "personal_loan"}, "Authorization", "Bearer "+uiLoanKey)
		if got, want := r.Status, http.StatusCreated; got != want {
			t.Fatalf("status = %d, want %d (%s)", got, want, r.Raw)
		}
		if got, want := r.Body["placed_by"], "loan-service"; got != want {
			t.Errorf("placed_by = %v, want %v", got, want)
		}
	})
}

// sessionStores are the session stores the session tests run on: Redis,
// as arbiter runs, and web's in-memory default.
var sessionStores = []struct {
	name string
	mod  func(*web.Config)
}{
	{"redis", nil},
	{"memory", func(c *web.Config) { c.Sessions = nil }},
}

func TestBranchSignOut(t *testing.T) {
	for _, st := range sessionStores {
		t.Run(st.name, func(t *testing.T) { testBranchSignOut(t, st.mod) })
	}
}

func testBranchSignOut(t *testing.T, store func(*web.Config)) {
	env := startUI(t, false, store)
	c := env.client(t)
	c.signIn(t, uiAgent, uiPassword)
	old := c.sessionCookie(t)

	if got, want := c.do(t, http.MethodDelete, "/branch/session", nil).Status, http.StatusForbidden; got != want {
		t.Fatalf("sign-out without CSRF: status = %d, want %d", got, want)
	}
	if got, want := c.do(t, http.MethodGet, "/v1/customers/C-1", nil).Status, http.StatusOK; got != want {
		t.Fatalf("session after a refused sign-out: status = %d, want %d", got, want)
	}
	if got, want := c.do(t, http.MethodDelete, "/branch/session", nil, web.CSRFHeader, c.csrf).Status, http.StatusNoContent; got != want {
		t.Fatalf("sign-out: status = %d, want %d", got, want)
	}
	if got, want := c.do(t, http.MethodGet, "/branch/session", nil).Status, http.StatusUnauthorized; got != want {
		t.Errorf("session info after sign-out: status = %d, want %d", got, want)
	}
	// The server forgot the session: replaying the old cookie fails too.
	replay := env.client(t)
	u, _ := url.Parse(env.URL)
	replay.http.Jar.SetCookies(u, []*http.Cookie{old})
	if got, want := replay.do(t, http.MethodGet, "/v1/customers/C-1", nil).Status, http.StatusUnauthorized; got != want {
		t.Errorf("replayed cookie: status = %d, want %d", got, want)
	}
}

func TestBranchSessionIdleExpiry(t *testing.T) {
	for _, st := range sessionStores {
		t.Run(st.name, func(t *testing.T) { testBranchSessionIdleExpiry(t, st.mod) })
	}
}

func testBranchSessionIdleExpiry(t *testing.T, store func(*web.Config)) {
	env := startUI(t, false, func(c *web.Config) {
		c.SessionIdle = 10 * time.Minute
		if store != nil {
			store(c)
		}
	})
	c := env.client(t)
	c.signIn(t, uiAgent, uiPassword)
	for i := range 3 { // activity keeps it alive past the idle time
		env.Advance(9 * time.Minute)
		if got, want := c.do(t, http.MethodGet, "/v1/customers/C-1", nil).Status, http.StatusOK; got != want {
			t.Fatalf("request %d after 9 idle minutes: status = %d, want %d", i+1, got, want)
		}
	}
	env.Advance(10 * time.Minute)
	if got, want := c.do(t, http.MethodGet, "/v1/customers/C-1", nil).Status, http.StatusUnauthorized; got != want {
		t.Fatalf("after 10 idle minutes: status = %d, want %d", got, want)
	}
	if got, want := c.do(t, http.MethodGet, "/branch/session", nil).Status, http.StatusUnauthorized; got != want {
		t.Fatalf("session info: status = %d, want %d", got, want)
	}
}

func TestBranchSignInThrottle(t *testing.T) {
	for _, st := range sessionStores {
		t.Run(st.name, func(t *testing.T) { testBranchSignInThrottle(t, st.mod) })
	}
}

func testBranchSignInThrottle(t *testing.T, store func(*web.Config)) {
	signIn := func(c *uiClient, user, pw string) uiResponse {
		t.Helper()
		return c.do(t, http.MethodPost, "/branch/session", map[string]string{"username": user, "password": pw})
	}

	t.Run("wrong username and wrong password get the same answer", func(t *testing.T) {
		c := startUI(t, false, store).client(t)
		a, b := signIn(c, uiAgent, "nope"), signIn(c, "nobody", "nope")
		if a.Status != http.StatusUnauthorized || b.Status != http.StatusUnauthorized || a.Body["detail"] != b.Body["detail"] {
			t.Fatalf("answers differ: %d %s / %d %s", a.Status, a.Raw, b.Status, b.Raw)
		}
		if a.Header.Get("Set-Cookie") != "" {
			t.Error("a failed sign-in set a cookie")
		}
	})

	t.Run("per username", func(t *testing.T) {
		env := startUI(t, false, store)
		c := env.client(t)
		for i := range web.SignInMaxFailures - 1 {
			if got, want := signIn(c, uiAgent, "guess").Status, http.StatusUnauthorized; got != want {
				t.Fatalf("failure %d: status = %d, want %d", i+1, got, want)
			}
		}
		r := signIn(c, uiAgent, "guess")
		if got, want := r.Status, http.StatusTooManyRequests; got != want {
			t.Fatalf("failure %d: status = %d, want %d", web.SignInMaxFailures, got, want)
		}
		if d, _ := r.Body["detail"].(string); !strings.Contains(d, "Too many failed sign-ins") {
			t.Errorf("detail = %q", d)
		}
		if got, want := signIn(c, uiAgent, uiPassword).Status, http.StatusTooManyRequests; got != want {
			t.Fatalf("right password while blocked: status = %d, want %d", got, want)
		}
		// Another agent at the same address is not blocked.
		env.client(t).signIn(t, uiOtherAgent, uiOtherPasswrd)
		env.Advance(web.SignInWindow)
		c.signIn(t, uiAgent, uiPassword)
	})

	t.Run("per address", func(t *testing.T) {
		env := startUI(t, false, store)
		c := env.client(t)
		for i := range web.SignInMaxFailuresPerAddress - 1 {
			user := uiClerks[i%len(uiClerks)] // 4 failures each at most: no username is blocked
			if got, want := signIn(c, user, "guess").Status, http.StatusUnauthorized; got != want {
				t.Fatalf("failure %d: status = %d, want %d", i+1, got, want)
			}
		}
		if got, want := signIn(c, "zed", "guess").Status, http.StatusTooManyRequests; got != want {
			t.Fatalf("failure %d: status = %d, want %d", web.SignInMaxFailuresPerAddress, got, want)
		}
		if got, want := signIn(env.client(t), uiOtherAgent, uiOtherPasswrd).Status, http.StatusTooManyRequests; got != want {
			t.Fatalf("right password from a blocked address: status = %d, want %d", got, want)
		}
		env.Advance(web.SignInWindow)
		env.client(t).signIn(t, uiOtherAgent, uiOtherPasswrd)
	})
}

// TestBranchSignInThrottleConcurrent: parallel wrong sign-ins for one
// username, spread over two instances on one Redis, get at most
// SignInMaxFailures bcrypt comparisons between them: each attempt is
// counted before its comparison, not after, so they cannot all pass the
// limit while none is counted yet. (The memory store, one instance.)
func TestBranchSignInThrottleConcurrent(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	for _, tc := range []struct {
		name string
		envs func() []*uiEnv
	}{
		{"redis, two instances", func() []*uiEnv {
			return []*uiEnv{startUIOn(t, rdb, false, nil), startUIOn(t, rdb, false, nil)}
		}},
		{"memory", func() []*uiEnv { return []*uiEnv{startUI(t, false, func(c *web.Config) { c.Sessions = nil })} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compared, restore := web.CountBcrypt()
			defer restore()
			envs := tc.envs()
			const attempts = 200
			var wg sync.WaitGroup
			statuses := make([]int, attempts)
			for i := range attempts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := envs[i%len(envs)].client(t)
					statuses[i] = c.do(t, http.MethodPost, "/branch/session", map[string]string{"username": uiAgent, "password": "guess"}).Status
				}()
			}
			wg.Wait()
			counts := map[int]int{}
			for _, s := range statuses {
				counts[s]++
			}
			if n := compared.Load(); n > web.SignInMaxFailures || n == 0 {
				t.Fatalf("%d parallel wrong sign-ins made %d bcrypt comparisons (answers %v), want 1 to %d", attempts, n, counts, web.SignInMaxFailures)
			}
			if counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != attempts {
				t.Fatalf("answers %v, want only 401 and 429", counts)
			}
			if got, want := envs[0].client(t).do(t, http.MethodPost, "/branch/session", map[string]string{"username": uiAgent, "password": uiPassword}).Status, http.StatusTooManyRequests; got != want {
				t.Fatalf("right password after the flood: status = %d, want %d", got, want)
			}
		})
	}
}
