package web

import (
	"github.com/arbiter-bank/arbiter/validation"
)

// routes lists every route, its method, its middleware and its role.
func (s *Server) routes() {
	e := s.echo
	e.Use(recoverPanics(s.cfg.Logger), requestID, s.cfg.Metrics.observeRequests, accessLog(s.cfg.Logger), timeout(s.cfg.RequestTimeout))

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(s.cfg.Ready))
	e.GET("/.well-known/jwks.json", handleJWKS(s.cfg.Tokens))
	e.GET("/openapi.yaml", handleOpenAPI())    // the API's contract (openapi.go)
	e.GET("/metrics", s.cfg.Metrics.handler()) // Prometheus; keep it off public ingress

	const (
		checker  = validation.RoleChecker
		redeemer = validation.RoleRedeemer
		admin    = validation.RoleAdmin
	)
	// Branch UI (ui.go, session.go): the page, sign-in and sign-out. Its
	// session cookie authenticates /v1 calls as BranchClientID [checker].
	ui := newBranchUI(s.cfg)
	e.GET("/branch", redirectToBranch)
	br := e.Group("/branch", ui.headers)
	br.GET("/*", ui.handleAsset())
	br.GET("/session", ui.handleSessionInfo())
	br.POST("/session", ui.handleSignIn())
	br.DELETE("/session", ui.handleSignOut()) // CSRF header required

	v1 := e.Group("/v1", ui.sessionAuth, authenticate(s.cfg.Clients))
	v1.GET("/ping", handlePing()) // any client: the framework baseline for load tests, no store
	v1.POST("/checks", s.handleCreateCheck(), require(checker))
	v1.GET("/checks/:check_id", s.handleGetCheck(), require(checker))
	v1.DELETE("/checks/:check_id", s.handleCancelCheck(), require(checker, redeemer)) // redeemers: own products only
	v1.POST("/redemptions", s.handleRedeem(), require(redeemer))
	v1.GET("/customers/:customer_id", s.handleGetCustomer(), require(checker, redeemer))
	v1.GET("/customers/:customer_id/audit", s.handleAudit(), require(checker))
	v1.DELETE("/customers/:customer_id/products/:product", s.handleRelease(), require(redeemer)) // the product's redeemers and admins
	v1.PUT("/customers/:customer_id/products/:product", s.handleImport(), require(admin))
	v1.GET("/customers/:customer_id/eligibility", s.handleEligibility(), require(checker)) // dry run: ?product=
	v1.PUT("/customers/:customer_id/block", s.handleBlock(), require(admin))
	v1.DELETE("/customers/:customer_id/block", s.handleUnblock(), require(admin))
}
