package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/validation"
)

// redact removes what only admins may see from a refusal: the rating
// numbers (checkers see that the rating is too low, not by how much).
func redact(vs []validation.Violation, actor validation.Actor) []validation.Violation {
	if actor.Has(validation.RoleAdmin) {
		return vs
	}
	out := make([]validation.Violation, len(vs))
	for i, v := range vs {
		v.RequiredRating, v.Rating = nil, nil
		out[i] = v
	}
	return out
}

// redactErr applies redact to a refusal error.
func redactErr(err error, actor validation.Actor) error {
	var e *validation.Error
	if !errors.As(err, &e) || len(e.Violations) == 0 {
		return err
	}
	cp := *e
	cp.Violations = redact(e.Violations, actor)
	return &cp
}

type ruleView struct {
	Rule       string                 `json:"rule"`
	Verdict    string                 `json:"verdict"`
	Violations []validation.Violation `json:"violations,omitempty"`
}

type eligibilityResponse struct {
	CustomerID string `json:"customer_id"`
	Product    string `json:"product"`
	// PolicyVersion is the policy version whose rules were evaluated.
	PolicyVersion string                 `json:"policy_version"`
	Decision      string                 `json:"decision"` // allow | refuse
	Rules         []ruleView             `json:"rules"`
	Violations    []validation.Violation `json:"violations"`
}

// handleEligibility: GET /v1/customers/{customer_id}/eligibility?product=P,
// the dry run of a check: the decision and every rule's verdict, no hold.
func (s *Server) handleEligibility() echo.HandlerFunc {
	return func(c echo.Context) error {
		product := c.QueryParam("product")
		if product == "" {
			return validation.Errorf(validation.ReasonInvalidRequest, "query parameter product is required")
		}
		e, err := s.cfg.Service.Eligibility(c.Request().Context(), c.Param("customer_id"), product)
		if err != nil {
			return err
		}
		actor := actorOf(c)
		resp := eligibilityResponse{CustomerID: e.CustomerID, Product: e.Product, PolicyVersion: e.PolicyVersion, Decision: "allow",
			Violations: redact(e.Violations, actor)}
		if resp.Violations == nil {
			resp.Violations = []validation.Violation{}
		}
		if !e.Allowed {
			resp.Decision = "refuse"
		}
		for _, r := range e.Rules {
			resp.Rules = append(resp.Rules, ruleView{Rule: r.Rule, Verdict: r.Verdict, Violations: redact(r.Violations, actor)})
		}
		return c.JSON(http.StatusOK, resp)
	}
}

type blockRequest struct {
	Reason string     `json:"reason"`
	Until  *time.Time `json:"until"`
}

type blockResponse struct {
	CustomerID       string     `json:"customer_id"`
	Reason           string     `json:"reason"`
	Until            *time.Time `json:"until,omitempty"`
	CancelledCheckID string     `json:"cancelled_check_id,omitempty"`
}

// handleBlock: PUT /v1/customers/{customer_id}/block {"reason","until"?}
// (admin). A live hold is cancelled; grants are untouched.
func (s *Server) handleBlock() echo.HandlerFunc {
	return func(c echo.Context) error {
		var req blockRequest
		if err := decode(c, &req); err != nil {
			return err
		}
		var until time.Time
		if req.Until != nil {
			until = *req.Until
		}
		cancelled, err := s.cfg.Service.Block(c.Request().Context(), actorOf(c), c.Param("customer_id"), req.Reason, until)
		if err != nil {
			return err
		}
		resp := blockResponse{CustomerID: validation.CanonicalCustomerID(c.Param("customer_id")), Reason: req.Reason, Until: req.Until}
		if cancelled != nil {
			resp.CancelledCheckID = cancelled.ID
		}
		return c.JSON(http.StatusOK, resp)
	}
}

// handleUnblock: DELETE /v1/customers/{customer_id}/block (admin) → 204.
func (s *Server) handleUnblock() echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.cfg.Service.Unblock(c.Request().Context(), actorOf(c), c.Param("customer_id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}
