package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/web"
)

// as returns a client of env carrying another client's session cookie and
// CSRF token, as a browser does when the load balancer picks another
// instance.
func (c *uiClient) as(tb testing.TB, env *uiEnv) *uiClient {
	tb.Helper()
	ck := c.sessionCookie(tb)
	if ck == nil {
		tb.Fatal("no session cookie to carry")
	}
	other := env.client(tb)
	u, _ := url.Parse(env.URL)
	other.http.Jar.SetCookies(u, []*http.Cookie{ck})
	other.csrf = c.csrf
	return other
}

// TestBranchSessionsInRedis: a session lives in Redis under its cookie's
// hash only, and every server on that Redis knows it.
func TestBranchSessionsInRedis(t *testing.T) {
	ctx := context.Background()

	t.Run("the store holds the cookie's hash and no secret but the CSRF token", func(t *testing.T) {
		env := startUI(t, false, nil)
		c := env.client(t)
		c.signIn(t, uiAgent, uiPassword)
		cookie := c.sessionCookie(t).Value
		sum := sha256.Sum256([]byte(cookie))
		keys, err := env.Redis.Keys(ctx, "arb:session:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := "arb:session:" + hex.EncodeToString(sum[:]); len(keys) != 1 || keys[0] != want {
			t.Fatalf("session keys = %v, want [%s]", keys, want)
		}
		raw, err := env.Redis.HGet(ctx, keys[0], "v").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{cookie, "$2a$", uiPassword} {
			if strings.Contains(raw, secret) {
				t.Errorf("stored session %s contains %q", raw, secret)
			}
		}
		var v struct{ Agent, CSRF string }
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatal(err)
		}
		if v.Agent != uiAgent || v.CSRF != c.csrf {
			t.Errorf("stored session = %s, want agent %s and the CSRF token given at sign-in", raw, uiAgent)
		}
	})

	t.Run("two servers on one Redis share sign-in and sign-out", func(t *testing.T) {
		a := startUI(t, false, nil)
		b := startUIOn(t, a.Redis, false, nil)
		onA := a.client(t)
		onA.signIn(t, uiAgent, uiPassword)
		onB := onA.as(t, b)
		r := onB.do(t, http.MethodGet, "/branch/session", nil)
		if r.Status != http.StatusOK || r.Body["username"] != uiAgent || r.Body["csrf_token"] != onA.csrf {
			t.Fatalf("session on B = %d %s, want A's session", r.Status, r.Raw)
		}
		if got, want := onB.do(t, http.MethodDelete, "/branch/session", nil, web.CSRFHeader, onB.csrf).Status, http.StatusNoContent; got != want {
			t.Fatalf("sign-out on B: status = %d, want %d", got, want)
		}
		if got, want := onA.do(t, http.MethodGet, "/v1/customers/C-1", nil).Status, http.StatusUnauthorized; got != want {
			t.Fatalf("A after sign-out on B: status = %d, want %d", got, want)
		}
	})

	t.Run("an agent removed from the clients file, or given a new password, is signed out", func(t *testing.T) {
		newHash, err := bcrypt.GenerateFromPassword([]byte("a new password"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		reset := append([]web.Agent(nil), uiAgents()...)
		reset[0].PasswordBcrypt = string(newHash)
		for name, agents := range map[string][]web.Agent{"removed": uiAgents()[1:], "password reset": reset} {
			t.Run(name, func(t *testing.T) {
				clients, err := web.NewClients([]web.Client{
					{ID: "branch-portal", Key: uiCheckerKey, Roles: []validation.Role{validation.RoleChecker}},
				}, agents)
				if err != nil {
					t.Fatal(err)
				}
				a := startUI(t, false, nil)
				b := startUIOn(t, a.Redis, false, func(c *web.Config) { c.Clients = clients })
				onA := a.client(t)
				onA.signIn(t, uiAgent, uiPassword)
				if got, want := onA.as(t, b).do(t, http.MethodGet, "/branch/session", nil).Status, http.StatusUnauthorized; got != want {
					t.Fatalf("session on the server with the new clients file: status = %d, want %d", got, want)
				}
				if got, want := onA.do(t, http.MethodGet, "/branch/session", nil).Status, http.StatusUnauthorized; got != want {
					t.Fatalf("the session was not deleted: status = %d, want %d", got, want)
				}
			})
		}
	})

	t.Run("ends after SessionMaxAge however active", func(t *testing.T) {
		env := startUI(t, false, func(c *web.Config) { c.SessionIdle = 24 * time.Hour })
		c := env.client(t)
		c.signIn(t, uiAgent, uiPassword)
		env.Advance(web.SessionMaxAge - time.Minute)
		if got, want := c.do(t, http.MethodGet, "/branch/session", nil).Status, http.StatusOK; got != want {
			t.Fatalf("a minute before the expiry: status = %d, want %d", got, want)
		}
		env.Advance(time.Minute)
		if got, want := c.do(t, http.MethodGet, "/branch/session", nil).Status, http.StatusUnauthorized; got != want {
			t.Fatalf("at the expiry: status = %d, want %d", got, want)
		}
	})

	t.Run("a store that fails answers 503, never a sign-out", func(t *testing.T) {
		var flaky *flakySessions
		env := startUI(t, false, func(c *web.Config) {
			flaky = &flakySessions{SessionStore: c.Sessions}
			c.Sessions = flaky
		})
		c := env.client(t)
		c.signIn(t, uiAgent, uiPassword)
		flaky.down.Store(true)
		for _, path := range []string{"/branch/session", "/v1/customers/C-1"} {
			r := c.do(t, http.MethodGet, path, nil)
			if r.Status != http.StatusServiceUnavailable || r.Body["reason"] != string(validation.ReasonUnavailable) {
				t.Errorf("GET %s with the store down = %d %s, want 503 unavailable", path, r.Status, r.Raw)
			}
		}
		flaky.down.Store(false)
		if got, want := c.do(t, http.MethodGet, "/branch/session", nil).Status, http.StatusOK; got != want {
			t.Fatalf("session once the store is back: status = %d, want %d", got, want)
		}
	})
}

// flakySessions is a session store whose reads fail while down is set.
type flakySessions struct {
	web.SessionStore
	down atomic.Bool
}

func (f *flakySessions) TouchSession(ctx context.Context, key string, now time.Time, idle time.Duration) ([]byte, bool, error) {
	if f.down.Load() {
		return nil, false, validation.Errorf(validation.ReasonUnavailable, "the session store is unavailable")
	}
	return f.SessionStore.TouchSession(ctx, key, now, idle)
}
