package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/validation"
)

// Branch UI sessions. Agents sign in with a username and password from the
// clients file; the session cookie then stands in for an API key on /v1,
// with the actor BranchClientID acting for the agent in the checker role.
//
// Sessions live in this process's memory: a restart signs every agent out,
// and several arbiter instances behind one load balancer need sticky
// sessions (or a shared store behind the sessions type).

// Defaults of the branch UI's sessions and sign-in throttle.
const (
	// DefaultSessionIdle is how long a session lives without a request.
	DefaultSessionIdle = 15 * time.Minute
	// SessionMaxAge bounds a session however active it is: agents sign in
	// again at least once a working day.
	SessionMaxAge = 12 * time.Hour
	// BranchClientID is the client id of calls made through the branch UI;
	// the agent's username goes with it as the actor's Agent.
	BranchClientID = "branch-ui"
	// CSRFHeader carries the session's CSRF token on every state-changing
	// request authenticated by the session cookie.
	CSRFHeader = "X-CSRF-Token"

	// SignInMaxFailures failed sign-ins of one username within
	// SignInWindow block that username until the window ends;
	// SignInMaxFailuresPerAddress do the same for one client address.
	SignInMaxFailures           = 5
	SignInMaxFailuresPerAddress = 20
	SignInWindow                = 10 * time.Minute
)

// sessionCookie is the cookie's name over plain HTTP; over TLS the __Host-
// prefix makes browsers refuse it unless it is Secure, host-only and Path=/.
const (
	sessionCookie       = "arbiter_session"
	sessionCookieSecure = "__Host-arbiter_session"
)

// dummyHash is compared against when the username is unknown, so that a
// wrong username takes as long as a wrong password (bcrypt cost 10, the
// default agents' hashes are made with).
const dummyHash = "$2a$10$l4eaJ/NV7OKCf7CYWkP68.5XAoFmX2.B//Dhepx0.wRBXr6pOgBvu"

// session is one signed-in agent.
type session struct {
	agent   Agent
	csrf    string
	created time.Time
	seen    time.Time
}

// sessions is the in-memory session store. Ids are kept only as SHA-256
// hashes, so the map's contents cannot be replayed as cookies.
type sessions struct {
	idle time.Duration
	now  func() time.Time

	mu   sync.Mutex
	byID map[[sha256.Size]byte]*session
}

func newSessions(idle time.Duration, now func() time.Time) *sessions {
	return &sessions{idle: idle, now: now, byID: map[[sha256.Size]byte]*session{}}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for the agent and returns its id (the cookie).
func (s *sessions) create(a Agent) (string, session) {
	id := randomToken()
	now := s.now()
	sess := &session{agent: a, csrf: randomToken(), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.byID { // sweep here: sign-ins are rare, the map small
		if s.expired(v, now) {
			delete(s.byID, k)
		}
	}
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, *sess
}

func (s *sessions) expired(v *session, now time.Time) bool {
	return now.Sub(v.seen) >= s.idle || now.Sub(v.created) >= SessionMaxAge
}

// get returns the live session of an id and marks it used; expired
// sessions are removed.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	k := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[k]
	if !ok {
		return session{}, false
	}
	if s.expired(v, now) {
		delete(s.byID, k)
		return session{}, false
	}
	v.seen = now
	return *v, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sha256.Sum256([]byte(id)))
}

// throttle counts failures per key in a fixed window that opens at the
// first failure: max failures block the key until the window closes.
type throttle struct {
	max    int
	window time.Duration

	mu      sync.Mutex
	entries map[string]*strikes
}

type strikes struct {
	count int
	first time.Time
}

// maxThrottleEntries bounds the memory an attacker cycling usernames or
// addresses can make the throttle use; past it, stale entries are swept.
const maxThrottleEntries = 10000

func newThrottle(max int, window time.Duration) *throttle {
	return &throttle{max: max, window: window, entries: map[string]*strikes{}}
}

// blocked reports how long the key stays blocked, 0 when it is not.
func (t *throttle) blocked(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	if !ok || e.count < t.max {
		return 0
	}
	if left := e.first.Add(t.window).Sub(now); left > 0 {
		return left
	}
	delete(t.entries, key)
	return 0
}

func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	if !ok || now.Sub(e.first) >= t.window {
		if len(t.entries) >= maxThrottleEntries {
			t.sweep(now)
		}
		e = &strikes{first: now}
		t.entries[key] = e
	}
	e.count++
}

func (t *throttle) sweep(now time.Time) {
	for k, e := range t.entries {
		if now.Sub(e.first) >= t.window {
			delete(t.entries, k)
		}
	}
}

func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

// clientAddr is the address sign-ins are throttled by: the connection's
// peer. Forwarded-for headers are ignored because a client can forge them;
// behind a reverse proxy every agent then shares the proxy's address, so
// SignInMaxFailuresPerAddress bounds the whole branch network's failures.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type signInRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// sessionResponse is what the page needs after signing in: who is signed
// in, the CSRF token, and the products the policy knows.
type sessionResponse struct {
	Username           string          `json:"username"`
	Branch             string          `json:"branch,omitempty"`
	CSRFToken          string          `json:"csrf_token"`
	IdleTimeoutSeconds int             `json:"idle_timeout_seconds"`
	Products           []branchProduct `json:"products"`
	Now                time.Time       `json:"now"`
}

type branchProduct struct {
	ID             string   `json:"id"`
	Title          string   `json:"title"`
	HoldTTLSeconds int      `json:"hold_ttl_seconds"`
	Excludes       []string `json:"excludes,omitempty"`
}

func (ui *branchUI) sessionView(sess session) sessionResponse {
	r := sessionResponse{
		Username: sess.agent.Username, Branch: sess.agent.Branch, CSRFToken: sess.csrf,
		IdleTimeoutSeconds: int(ui.sessions.idle / time.Second), Now: ui.cfg.Now().UTC(),
		Products: []branchProduct{},
	}
	for _, name := range ui.cfg.Policy.Names() {
		rule, _ := ui.cfg.Policy.Rule(name)
		r.Products = append(r.Products, branchProduct{ID: name, Title: rule.Title,
			HoldTTLSeconds: int(rule.HoldTTL / time.Second), Excludes: rule.Conflicts})
	}
	return r
}

// handleSignIn: POST /branch/session {"username","password"} → 200 with the
// session and a session cookie; 401 for a wrong username or password (the
// same answer for both); 429 while the username or the address is blocked.
func (ui *branchUI) handleSignIn() echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := ui.crossOrigin.Check(c.Request()); err != nil {
			return validation.Errorf(validation.ReasonForbidden, "cross-origin sign-in refused")
		}
		var req signInRequest
		if err := decode(c, &req); err != nil {
			return err
		}
		if req.Username == "" || req.Password == "" || len(req.Username) > 128 || len(req.Password) > 72 {
			return validation.Errorf(validation.ReasonInvalidRequest, "enter a username and a password (at most 72 characters)")
		}
		now := ui.cfg.Now()
		userKey, addrKey := strings.ToLower(req.Username), clientAddr(c.Request())
		if wait := max(ui.perUser.blocked(userKey, now), ui.perAddr.blocked(addrKey, now)); wait > 0 {
			return throttled(wait)
		}
		agent, ok, err := ui.verify(c.Request().Context(), req.Username, req.Password)
		if err != nil {
			return err
		}
		if !ok {
			ui.perUser.fail(userKey, now)
			ui.perAddr.fail(addrKey, now)
			ui.cfg.Logger.Warn("branch sign-in failed", "username", req.Username, "addr", addrKey)
			if wait := max(ui.perUser.blocked(userKey, now), ui.perAddr.blocked(addrKey, now)); wait > 0 {
				return throttled(wait)
			}
			return validation.Errorf(validation.ReasonUnauthorized, "Wrong username or password.")
		}
		ui.perUser.reset(userKey)
		if old := ui.cookieValue(c); old != "" {
			ui.sessions.delete(old) // one session per sign-in: the previous one ends
		}
		id, sess := ui.sessions.create(agent)
		ui.setCookie(c, id, true)
		ui.cfg.Logger.Info("branch sign-in", "username", agent.Username, "branch", agent.Branch)
		return c.JSON(http.StatusOK, ui.sessionView(sess))
	}
}

func throttled(wait time.Duration) error {
	mins := int((wait + time.Minute - 1) / time.Minute)
	unit := "minutes"
	if mins == 1 {
		unit = "minute"
	}
	return validation.Errorf(reasonRateLimited, "Too many failed sign-ins. Try again in %d %s, or ask your supervisor.", mins, unit)
}

// verify checks a password against the agent's bcrypt hash. An unknown
// username costs one bcrypt comparison too. Comparisons run at most
// bcryptSlots at a time, so a flood of sign-ins cannot starve the API of CPU.
func (ui *branchUI) verify(ctx context.Context, username, password string) (Agent, bool, error) {
	select {
	case ui.bcryptSlots <- struct{}{}:
		defer func() { <-ui.bcryptSlots }()
	case <-ctx.Done():
		return Agent{}, false, &validation.Error{Reason: validation.ReasonUnavailable, Detail: "too many sign-ins at once; try again", Err: ctx.Err()}
	}
	agent, known := ui.agents[username]
	hash := dummyHash
	if known {
		hash = agent.PasswordBcrypt
	}
	ok := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	return agent, ok && known, nil
}

// handleSessionInfo: GET /branch/session → the current session (the page
// calls it on load), or 401.
func (ui *branchUI) handleSessionInfo() echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, ok := ui.current(c)
		if !ok {
			return validation.Errorf(validation.ReasonUnauthorized, "Not signed in.")
		}
		return c.JSON(http.StatusOK, ui.sessionView(sess))
	}
}

// handleSignOut: DELETE /branch/session (with the CSRF header) → 204; the
// session ends on the server, not only in the browser.
func (ui *branchUI) handleSignOut() echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, ok := ui.current(c)
		if ok {
			if err := ui.checkCSRF(c, sess); err != nil {
				return err
			}
			ui.sessions.delete(ui.cookieValue(c))
			ui.cfg.Logger.Info("branch sign-out", "username", sess.agent.Username)
		}
		ui.setCookie(c, "", false)
		return c.NoContent(http.StatusNoContent)
	}
}

func (ui *branchUI) secure(c echo.Context) bool {
	return ui.cfg.SecureCookies || c.Request().TLS != nil
}

func (ui *branchUI) cookieName(c echo.Context) string {
	if ui.secure(c) {
		return sessionCookieSecure
	}
	return sessionCookie
}

// setCookie sets (or, with keep false, clears) the session cookie. It has no
// Max-Age, so it dies with the browser; the server enforces the idle expiry.
func (ui *branchUI) setCookie(c echo.Context, id string, keep bool) {
	ck := &http.Cookie{
		Name: ui.cookieName(c), Value: id, Path: "/",
		HttpOnly: true, Secure: ui.secure(c), SameSite: http.SameSiteStrictMode,
	}
	if !keep {
		ck.MaxAge = -1
	}
	c.SetCookie(ck)
}

func (ui *branchUI) cookieValue(c echo.Context) string {
	ck, err := c.Cookie(ui.cookieName(c))
	if err != nil {
		return ""
	}
	return ck.Value
}

func (ui *branchUI) current(c echo.Context) (session, bool) {
	return ui.sessions.get(ui.cookieValue(c))
}

// checkCSRF guards a state-changing request made with the session cookie:
// the browser must say it is same-origin (Sec-Fetch-Site/Origin, checked by
// net/http's CrossOriginProtection) and the request must carry the
// session's CSRF token, which only the page's own script can read.
func (ui *branchUI) checkCSRF(c echo.Context, sess session) error {
	if err := ui.crossOrigin.Check(c.Request()); err != nil {
		return validation.Errorf(validation.ReasonForbidden, "cross-origin request refused")
	}
	got := c.Request().Header.Get(CSRFHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
		return validation.Errorf(validation.ReasonForbidden, "missing or wrong %s header; reload the page", CSRFHeader)
	}
	return nil
}

// sessionAuth runs before authenticate on /v1: a request without an
// Authorization header but with a live session cookie acts as
// BranchClientID for the agent, in the checker role only. State-changing
// requests must pass checkCSRF. A bearer key always wins over a cookie, and
// needs no CSRF token: browsers never attach it on their own.
func (ui *branchUI) sessionAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Header.Get(echo.HeaderAuthorization) != "" {
			return next(c)
		}
		sess, ok := ui.current(c)
		if !ok {
			return next(c) // authenticate answers 401
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if err := ui.checkCSRF(c, sess); err != nil {
				return err
			}
		}
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		c.Set(actorKey, validation.Actor{ID: BranchClientID, Agent: sess.agent.Username, Roles: []validation.Role{validation.RoleChecker}})
		return next(c)
	}
}

// String keeps a session's secrets out of logs and panics.
func (s session) String() string { return fmt.Sprintf("session(%s)", s.agent.Username) }
