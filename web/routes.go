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
	e.Use(recoverPanics(s.cfg.Logger), requestID)
	e.Use(s.tracing()...) // none when tracing is off (tracing.go)
	e.Use(s.metrics.observeRequests, accessLog(s.cfg.Logger), timeout(s.cfg.RequestTimeout))

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
	br := e.Group("/branch", ui.headers)
	get(br, "/*", ui.handleAsset())
	get(br, "/session", ui.handleSessionInfo())
	br.POST("/session", ui.handleSignIn())
	br.DELETE("/session", ui.handleSignOut()) // CSRF header required
	br.RouteNotFound("/*", wrongMethod(e))

	v1 := e.Group("/v1", ui.sessionAuth, authenticate(s.cfg.Clients))
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

// router is what *echo.Echo and *echo.Group have in common.
type router interface {
	Match(methods []string, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route
}

// get adds a GET route and its HEAD twin: the same handler, whose body
// net/http drops for HEAD, so HEAD answers exactly what GET would, headers
// and status included.
func get(r router, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	r.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
}
