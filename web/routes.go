package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/validation"
)

// routes lists every route, its method, its middleware and its role.
// Every GET route answers HEAD too (get): monitors and caches probe with
// HEAD, and without a route of its own echo answers it 405, or 404 inside
// a group with middleware (whose catch-all route matches any method).
func (s *Server) routes() {
	e := s.echo
	e.Use(everyRequest(recoverPanics(s.cfg.Logger), requestID, // then tracing, none when it is off (tracing.go)
		chain(s.tracing()...), s.metrics.observeRequests, accessLog(s.cfg.Logger), timeout(s.cfg.RequestTimeout)))

	get(e, "/healthz", handleHealthz())
	get(e, "/readyz", handleReadyz(s.cfg.Ready, s.full))
	get(e, "/.well-known/jwks.json", handleJWKS(s.cfg.Tokens))
	get(e, "/openapi.yaml", handleOpenAPI()) // the API's contract (openapi.go)
	get(e, "/metrics", s.metrics.handler())  // Prometheus; keep it off public ingress

	const (
		checker  = validation.RoleChecker
		redeemer = validation.RoleRedeemer
		admin    = validation.RoleAdmin
	)
	// Branch UI (ui.go, session.go): the page, sign-in and sign-out. Its
	// session cookie authenticates /v1 calls as BranchClientID [checker].
	ui := newBranchUI(s.cfg)
	get(e, "/branch", redirectToBranch)
	br := newGroup(e, "/branch", ui.headers)
	get(br, "/*", ui.handleAsset())
	get(br, "/session", ui.handleSessionInfo())
	br.POST("/session", ui.handleSignIn())
	br.DELETE("/session", ui.handleSignOut()) // CSRF header required
	br.RouteNotFound("/*", wrongMethod(e))

	v1 := newGroup(e, "/v1", ui.sessionAuth, authenticate(s.cfg.Clients))
	get(v1, "/ping", handlePing()) // any client: the framework baseline for load tests, no store
	v1.POST("/checks", s.handleCreateCheck(), require(checker))
	get(v1, "/checks/:check_id", s.handleGetCheck(), require(checker))                // otp: its placer only
	v1.DELETE("/checks/:check_id", s.handleCancelCheck(), require(checker, redeemer)) // its placer, its product's redeemers, branch agents, admins
	v1.POST("/redemptions", s.handleRedeem(), require(redeemer))
	get(v1, "/customers/:customer_id", s.handleGetCustomer(), require(checker, redeemer))
	get(v1, "/customers/:customer_id/audit", s.handleAudit(), require(checker))
	v1.DELETE("/customers/:customer_id/products/:product", s.handleRelease(), require(redeemer)) // the product's redeemers and admins
	v1.PUT("/customers/:customer_id/products/:product", s.handleImport(), require(admin))
	get(v1, "/customers/:customer_id/eligibility", s.handleEligibility(), require(checker)) // dry run: ?product=
	v1.PUT("/customers/:customer_id/block", s.handleBlock(), require(admin))
	v1.DELETE("/customers/:customer_id/block", s.handleUnblock(), require(admin))
	v1.POST("/reconciliations", s.handleStartReconciliation(), require(admin))       // 202; runs in the background (reconcile.go)
	get(v1, "/reconciliations/:id", s.handleGetReconciliation(), require(admin))     // progress, counts, findings paged
	get(v1, "/cases", s.handleCases(), require(checker))                             // open double holdings, for the branch UI
	v1.POST("/cases/:customer_id/resolution", s.handleResolveCase(), require(admin)) // audited case_resolved
	v1.POST("/policy/impact", s.handlePolicyImpact(), require(admin))                // a candidate policy (YAML) tried on the ledger (impact.go)
	v1.RouteNotFound("/*", wrongMethod(e))
}

// wrongMethod replaces the catch-all that a group with middleware puts
// under its prefix, where echo answers a known path asked with an unknown
// method 404: it answers 405 with Allow, as echo does outside groups. It
// runs after the group's middleware, so authentication still comes first.
func wrongMethod(e *echo.Echo) echo.HandlerFunc {
	return func(c echo.Context) error {
		path := c.Request().URL.Path
		var allow []string
		for _, m := range allowOrder {
			if slices.ContainsFunc(e.Routes(), func(r *echo.Route) bool { return r.Method == m && routeMatches(r.Path, path) }) {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			return echo.ErrNotFound
		}
		c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
		return echo.ErrMethodNotAllowed
	}
}

// allowOrder is the order of methods in Allow (e.Routes has none).
var allowOrder = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// routeMatches reports whether an echo route pattern (":name" one
// segment, a final "*" the rest) matches path.
func routeMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	for i, p := range ps {
		switch {
		case p == "*" && i == len(ps)-1:
			return true
		case i >= len(xs):
			return false
		case strings.HasPrefix(p, ":"):
			if xs[i] == "" {
				return false
			}
		case p != xs[i]:
			return false
		}
	}
	return len(ps) == len(xs)
}

// everyRequest is the middleware of every request, composed once around a
// handler that calls the route's: echo composes the middleware of Use
// anew on every request, a closure per middleware, and each request then
// gets this same chain. echo passes the route's handler as next, and also
// keeps it as c.Handler(), which the chain calls. The chain sees the
// request in a requestContext (auth.go). It drops the next echo gives
// it, so it must be the only e.Use: a middleware added with e.Use after
// it would never run (e.Pre's still do).
func everyRequest(mw ...echo.MiddlewareFunc) echo.MiddlewareFunc {
	h := withRequestContext(chain(mw...)(func(c echo.Context) error { return c.Handler()(c) }))
	return func(echo.HandlerFunc) echo.HandlerFunc { return h }
}

// group is echo.Group, but its middleware and a route's are composed
// once, when the route is added, where echo composes them on every
// request.
type group struct {
	e      *echo.Echo
	prefix string
	mw     []echo.MiddlewareFunc
}

// newGroup adds, as echo.Group does, catch-all routes under prefix, so a
// request for an unknown path passes the group's middleware too (a v1
// path answers 401 before 404).
func newGroup(e *echo.Echo, prefix string, mw ...echo.MiddlewareFunc) *group {
	g := &group{e: e, prefix: prefix, mw: mw}
	g.RouteNotFound("", echo.NotFoundHandler)
	g.RouteNotFound("/*", echo.NotFoundHandler)
	return g
}

func (g *group) handler(h echo.HandlerFunc, m []echo.MiddlewareFunc) echo.HandlerFunc {
	return chain(append(slices.Clip(g.mw), m...)...)(h)
}

func (g *group) Match(methods []string, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route {
	return g.e.Match(methods, g.prefix+path, g.handler(h, m))
}

func (g *group) POST(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return g.e.POST(g.prefix+path, g.handler(h, m))
}

func (g *group) PUT(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return g.e.PUT(g.prefix+path, g.handler(h, m))
}

func (g *group) DELETE(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return g.e.DELETE(g.prefix+path, g.handler(h, m))
}

func (g *group) RouteNotFound(path string, h echo.HandlerFunc) *echo.Route {
	return g.e.RouteNotFound(g.prefix+path, g.handler(h, nil))
}

// router is what *echo.Echo and *group have in common.
type router interface {
	Match(methods []string, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route
}

// get adds a GET route and its HEAD twin: the same handler, whose body
// net/http drops for HEAD, so HEAD answers exactly what GET would, headers
// and status included.
func get(r router, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	r.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
}
