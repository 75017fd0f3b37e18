package web

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/validation"
)

// Branch UI sessions. Agents sign in with a username and password from the
// clients file; the session cookie then stands in for an API key on /v1,
// with the actor BranchClientID acting for the agent in the checker role.
//
// Sessions and the sign-in throttle live in a SessionStore (Redis, in
// arbiter), so every instance knows every session and a restart signs no
// one out. The cookie carries an opaque random id; the store knows only its
// SHA-256.

// Defaults of the branch UI's sessions and sign-in throttle.
const (
	// DefaultSessionIdle is how long a session lives without a request.
	DefaultSessionIdle = 15 * time.Minute
	// SessionMaxAge bounds a session however active it is: agents sign in
	// again at least once a working day.
	SessionMaxAge = 12 * time.Hour
	// BranchClientID is the client id of calls made through the branch UI;
	// the agent's username goes with it as the actor's Agent.
	BranchClientID = clientauth.ReservedID
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

// session is one signed-in agent, as its store's value encodes it: what a
// request needs and nothing more (no password hash, no cookie id).
type session struct {
	agent   Agent
	csrf    string
	cred    string // credentialTag of the password hash signed in with
	created time.Time
	expires time.Time
}

// sessionValue is a session's encoding in the store; web alone reads it.
type sessionValue struct {
	Agent   string    `json:"agent"`
	Branch  string    `json:"branch,omitempty"`
	CSRF    string    `json:"csrf"`
	Cred    string    `json:"cred"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// sessions creates, reads and ends sessions in a SessionStore.
type sessions struct {
	store SessionStore
	idle  time.Duration
	now   func() time.Time
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionKey is the store's key of a cookie's id: its SHA-256, so the
// store's contents cannot be replayed as cookies.
func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// credentialTag names the password hash a session was signed in with, so
// that a new hash in the clients file (a password reset) ends the agent's
// sessions. A truncated SHA-256 of a bcrypt hash: nothing to guess from.
func credentialTag(a Agent) string {
	sum := sha256.Sum256([]byte(a.PasswordBcrypt))
	return hex.EncodeToString(sum[:8])
}

// create starts a session for the agent and returns its id (the cookie).
func (s *sessions) create(ctx context.Context, a Agent) (string, session, error) {
	id, now := randomToken(), s.now()
	sess := session{agent: Agent{Username: a.Username, Branch: a.Branch}, csrf: randomToken(), cred: credentialTag(a),
		created: now, expires: now.Add(SessionMaxAge)}
	value, err := json.Marshal(sessionValue{Agent: a.Username, Branch: a.Branch, CSRF: sess.csrf, Cred: sess.cred,
		Created: now.UTC(), Expires: sess.expires.UTC()})
	if err != nil {
		return "", session{}, err
	}
	if err := s.store.CreateSession(ctx, sessionKey(id), value, now, s.idle, sess.expires); err != nil {
		return "", session{}, err
	}
	return id, sess, nil
}

// get returns the live session of an id and marks it used.
func (s *sessions) get(ctx context.Context, id string) (session, bool, error) {
	if id == "" {
		return session{}, false, nil
	}
	value, ok, err := s.store.TouchSession(ctx, sessionKey(id), s.now(), s.idle)
	if err != nil || !ok {
		return session{}, false, err
	}
	var v sessionValue
	if err := json.Unmarshal(value, &v); err != nil || v.Agent == "" || v.CSRF == "" {
		return session{}, false, fmt.Errorf("branch session: undecodable value in the store: %v", err)
	}
	return session{agent: Agent{Username: v.Agent, Branch: v.Branch}, csrf: v.CSRF, cred: v.Cred, created: v.Created, expires: v.Expires}, true, nil
}

func (s *sessions) delete(ctx context.Context, id string) error {
	return s.store.DeleteSession(ctx, sessionKey(id))
}

// throttle counts failures per key in a fixed window that opens at the
// first failure: max failures block the key until the window closes. The
// counts live in the SessionStore, so failures on every instance add up.
// An attempt is reserved (counted as a failure) before its password is
// compared and taken back if it was none, so parallel attempts, on one
// instance or many, get at most max comparisons.
type throttle struct {
	store  SessionStore
	prefix string // "user:" or "addr:"
	max    int
	window time.Duration
}

// reserve counts an attempt unless the key is blocked; admitted is false
// when it is. wait is how long the key is (or, should this attempt fail,
// will be) blocked.
func (t *throttle) reserve(ctx context.Context, key string, now time.Time) (wait time.Duration, admitted bool, err error) {
	n, until, admitted, err := t.store.ReserveSignIn(ctx, t.prefix+key, now, t.window, t.max)
	return t.wait(n, until, now), admitted, err
}

// release takes back an attempt reserve counted.
func (t *throttle) release(ctx context.Context, key string) error {
	return t.store.ReleaseSignIn(ctx, t.prefix+key)
}

func (t *throttle) wait(n int, until, now time.Time) time.Duration {
	if n < t.max {
		return 0
	}
	return max(until.Sub(now), 0)
}

func (t *throttle) reset(ctx context.Context, key string) error {
	return t.store.ResetSignIn(ctx, t.prefix+key)
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
	policy := ui.cfg.Policy.At(r.Now)
	for _, name := range policy.Names() {
		rule, _ := policy.Rule(name)
		r.Products = append(r.Products, branchProduct{ID: name, Title: rule.Title,
			HoldTTLSeconds: int(rule.HoldTTL / time.Second), Excludes: rule.Conflicts()})
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
		ctx, now := c.Request().Context(), ui.cfg.Now()
		userKey, addrKey := strings.ToLower(req.Username), clientAddr(c.Request())
		// The attempt counts as a failure before the bcrypt comparison, so
		// parallel guesses cannot all pass the limit; it is taken back when
		// it was none.
		wait, err := ui.reserve(ctx, userKey, addrKey, now)
		if err != nil || wait > 0 {
			return cmp.Or(err, throttled(wait))
		}
		agent, ok, verr := ui.verify(ctx, req.Username, req.Password)
		// Record the verdict whatever time the request has left.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signInRecordTimeout)
		defer cancel()
		if verr != nil { // no comparison made: not a guess
			return errors.Join(verr, ui.perUser.release(ctx, userKey), ui.perAddr.release(ctx, addrKey))
		}
		if !ok {
			ui.cfg.Logger.Warn("branch sign-in failed", "username", req.Username, "addr", addrKey)
			if wait < 0 { // this failure reached a limit
				return throttled(-wait)
			}
			return validation.Errorf(validation.ReasonUnauthorized, "Wrong username or password.")
		}
		// A success forgets the username's failures and is none of the
		// address's.
		if err := errors.Join(ui.perUser.reset(ctx, userKey), ui.perAddr.release(ctx, addrKey)); err != nil {
			return err
		}
		if old := ui.cookieValue(c); old != "" {
			// One session per sign-in: the previous one ends.
			if err := ui.sessions.delete(ctx, old); err != nil {
				return err
			}
		}
		id, sess, err := ui.sessions.create(ctx, agent)
		if err != nil {
			return err
		}
		ui.setCookie(c, id, true)
		ui.cfg.Logger.Info("branch sign-in", "username", agent.Username, "branch", agent.Branch)
		return c.JSON(http.StatusOK, ui.sessionView(sess))
	}
}

// reserve counts the attempt against the username, then the address. A
// positive wait: refused, blocked that long (an address refusal takes the
// username's attempt back). A negative wait: admitted, and should the
// attempt fail, the username or the address is blocked for -wait.
// The username comes first so that an attacker hammering a blocked user
// does not use up a shared address's (a proxy's) budget.
func (ui *branchUI) reserve(ctx context.Context, userKey, addrKey string, now time.Time) (time.Duration, error) {
	byUser, ok, err := ui.perUser.reserve(ctx, userKey, now)
	if err != nil || !ok {
		return max(byUser, time.Nanosecond), err
	}
	byAddr, ok, err := ui.perAddr.reserve(ctx, addrKey, now)
	if err != nil || !ok {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signInRecordTimeout)
		defer cancel()
		return max(byAddr, time.Nanosecond), errors.Join(err, ui.perUser.release(rctx, userKey))
	}
	return -max(byUser, byAddr), nil
}

// signInRecordTimeout bounds the store calls that record a sign-in's
// verdict (failure count, reset, new session).
const signInRecordTimeout = 2 * time.Second

func throttled(wait time.Duration) error {
	mins := int((wait + time.Minute - 1) / time.Minute)
	unit := "minutes"
	if mins == 1 {
		unit = "minute"
	}
	return validation.Errorf(reasonRateLimited, "Too many failed sign-ins. Try again in %d %s, or ask your supervisor.", mins, unit)
}

// bcryptCompare is bcrypt.CompareHashAndPassword; tests count the calls.
var bcryptCompare = bcrypt.CompareHashAndPassword

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
	ok := bcryptCompare([]byte(hash), []byte(password)) == nil
	return agent, ok && known, nil
}

// handleSessionInfo: GET /branch/session → the current session (the page
// calls it on load), or 401.
func (ui *branchUI) handleSessionInfo() echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, ok, err := ui.current(c)
		if err != nil {
			return err
		}
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
		sess, ok, err := ui.current(c)
		if err != nil {
			return err
		}
		if ok {
			if err := ui.checkCSRF(c, sess); err != nil {
				return err
			}
			// Deleted from the shared store: every instance refuses it now.
			if err := ui.sessions.delete(c.Request().Context(), ui.cookieValue(c)); err != nil {
				return err
			}
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

// current is the request's live session. An agent no longer in the clients
// file, or with another password hash there, has none: sessions outlive
// restarts now, so removing an agent or resetting their password must end
// their sessions too (at once, on every instance that has reloaded the
// file). The branch shown is the file's, not the one signed in with.
func (ui *branchUI) current(c echo.Context) (session, bool, error) {
	id := ui.cookieValue(c)
	sess, ok, err := ui.sessions.get(c.Request().Context(), id)
	if err != nil || !ok {
		return session{}, false, err
	}
	agent, known := ui.agents[sess.agent.Username]
	if !known || subtle.ConstantTimeCompare([]byte(credentialTag(agent)), []byte(sess.cred)) != 1 {
		return session{}, false, ui.sessions.delete(c.Request().Context(), id)
	}
	sess.agent = Agent{Username: agent.Username, Branch: agent.Branch}
	return sess, true, nil
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
		sess, ok, err := ui.current(c)
		if err != nil {
			return err // the session store is unavailable: 503, not a silent 401
		}
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
		setActor(c, &validation.Actor{ID: BranchClientID, Agent: sess.agent.Username, Roles: []validation.Role{validation.RoleChecker}})
		return next(c)
	}
}

// String keeps a session's secrets out of logs and panics.
func (s session) String() string { return fmt.Sprintf("session(%s)", s.agent.Username) }
