package web

import (
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/validation"
)

// The clients file (format, validation, identification) lives in
// internal/clientauth, which the product services share; these names keep
// web's API as it was.
type (
	// Client is one API client of the clients file.
	Client = clientauth.Client
	// Credential names a way a client proves who it is.
	Credential = clientauth.Credential
	// Agent is a branch agent who signs in to the branch UI.
	Agent = clientauth.Agent
	// Clients is the parsed clients file: API clients and branch agents.
	Clients = clientauth.Clients
)

// Credentials a client may be required to present.
const (
	CredentialKey  = clientauth.CredentialKey
	CredentialCert = clientauth.CredentialCert
)

// MinKeyLength is the shortest API key accepted in a clients file.
const MinKeyLength = clientauth.MinKeyLength

// NewClients returns validated Clients built in code (clientauth.New).
func NewClients(clients []Client, agents []Agent) (*Clients, error) {
	return clientauth.New(clients, agents)
}

const actorKey = "arbiter.actor"

// authenticate resolves the bearer key and the verified client certificate
// into the request's actor (Clients.Identify): 401 when they identify no
// client, or not as the client's Require asks.
func authenticate(cs *Clients) echo.MiddlewareFunc {
	// Each client's actor is made once: a request keeps a pointer to it.
	actors := make(map[string]*validation.Actor, len(cs.Clients))
	for _, cl := range cs.Clients {
		actors[cl.ID] = &validation.Actor{ID: cl.ID, Roles: cl.Roles}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if actorSet(c) {
				return next(c) // already signed in (branch UI session)
			}
			key, cert, err := clientauth.Credentials(c.Request())
			if err != nil {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="arbiter"`)
				return err
			}
			client, err := cs.Identify(key, cert)
			if err != nil {
				if key == "" {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="arbiter"`)
				} else {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="arbiter", error="invalid_token"`)
				}
				return err
			}
			a := actors[client.ID]
			if a == nil { // a Clients changed after authenticate was made
				a = &validation.Actor{ID: client.ID, Roles: client.Roles}
			}
			setActor(c, a)
			return next(c)
		}
	}
}

// require lets through actors holding any of the roles (admins hold all).
func require(roles ...validation.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			a := actorOf(c)
			for _, r := range roles {
				if a.Has(r) {
					return next(c)
				}
			}
			return validation.Errorf(validation.ReasonForbidden, "%s lacks the role for this call (needs one of %v)", a.ID, roles)
		}
	}
}

// requestContext is the echo.Context that arbiter's middleware and
// handlers see (everyRequest): it keeps the request's actor, which
// echo's Set would keep in a map made for every request. Contexts are
// pooled; none outlives its request.
type requestContext struct {
	echo.Context
	actor *validation.Actor
	start time.Time // when the request reached the chain
}

var requestContexts = sync.Pool{New: func() any { return new(requestContext) }}

// withRequestContext runs h with c in a requestContext.
func withRequestContext(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rc := requestContexts.Get().(*requestContext)
		rc.Context, rc.actor, rc.start = c, nil, time.Now()
		err := h(rc)
		rc.Context, rc.actor = nil, nil
		requestContexts.Put(rc)
		return err
	}
}

// startOf is when the request reached everyRequest's chain: one clock
// reading that the metrics, the access log and the deadline share.
func startOf(c echo.Context) time.Time {
	if rc, ok := c.(*requestContext); ok {
		return rc.start
	}
	return time.Now()
}

// setActor records who the request comes from; outside everyRequest's
// chain (a test's bare context), in c's store.
func setActor(c echo.Context, a *validation.Actor) {
	if rc, ok := c.(*requestContext); ok {
		rc.actor = a
		return
	}
	c.Set(actorKey, a)
}

func actorSet(c echo.Context) bool {
	if rc, ok := c.(*requestContext); ok {
		return rc.actor != nil
	}
	_, ok := c.Get(actorKey).(*validation.Actor)
	return ok
}

// actorOf is the request's actor, the zero Actor before authentication.
func actorOf(c echo.Context) validation.Actor {
	if rc, ok := c.(*requestContext); ok {
		if rc.actor != nil {
			return *rc.actor
		}
		return validation.Actor{}
	}
	if a, ok := c.Get(actorKey).(*validation.Actor); ok {
		return *a
	}
	return validation.Actor{}
}
