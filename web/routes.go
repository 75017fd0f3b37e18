package web

import (
	"net/http"

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
	e.Use(s.cfg.Metrics.observeRequests, accessLog(s.cfg.Logger), timeout(s.cfg.RequestTimeout))

	get(e, "/healthz", handleHealthz())
	get(e, "/readyz", handleReadyz(s.cfg.Ready, s.full))
	get(e, "/.well-known/jwks.json", handleJWKS(s.cfg.Tokens))
	get(e, "/openapi.yaml", handleOpenAPI())    // the API's contract (openapi.go)
	get(e, "/metrics", s.cfg.Metrics.handler()) // Prometheus; keep it off public ingress

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
