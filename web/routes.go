package web

import (
	"github.com/arbiter-bank/arbiter/validation"
)

// routes lists every route, its method, its middleware and its role.
func (s *Server) routes() {
	e := s.echo
	e.Use(recoverPanics(s.cfg.Logger), requestID, accessLog(s.cfg.Logger), timeout(s.cfg.RequestTimeout))

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(s.cfg.Ready))
	e.GET("/.well-known/jwks.json", handleJWKS(s.cfg.Tokens))

	const (
		checker  = validation.RoleChecker
		redeemer = validation.RoleRedeemer
		admin    = validation.RoleAdmin
	)
	v1 := e.Group("/v1", authenticate(s.cfg.Clients))
	v1.POST("/checks", s.handleCreateCheck(), require(checker))
	v1.GET("/checks/:check_id", s.handleGetCheck(), require(checker))
	v1.DELETE("/checks/:check_id", s.handleCancelCheck(), require(checker, redeemer)) // redeemers: own products only
	v1.POST("/redemptions", s.handleRedeem(), require(redeemer))
	v1.GET("/customers/:customer_id", s.handleGetCustomer(), require(checker, redeemer))
	v1.GET("/customers/:customer_id/audit", s.handleAudit(), require(checker))
	v1.DELETE("/customers/:customer_id/products/:product", s.handleRelease(), require(redeemer)) // the product's redeemers and admins
	v1.PUT("/customers/:customer_id/products/:product", s.handleImport(), require(admin))
}
