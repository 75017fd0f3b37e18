package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

func handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

// handlePing: GET /v1/ping → 204 for any authenticated client, no store.
func handlePing() echo.HandlerFunc {
	return func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
}

// readyResponse is /readyz's body. Store is "full" while Redis refuses new
// data (a store_full answer within the last minute): still 200, because
// redemptions work and every instance shares the store (storefull.go).
type readyResponse struct {
	Status      string     `json:"status"`
	Store       string     `json:"store,omitempty"`
	StoreFullAt *time.Time `json:"store_full_at,omitempty"`
	Detail      string     `json:"detail,omitempty"`
}

func handleReadyz(ready func(ctx context.Context) error, full *storeFull) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := ready(c.Request().Context()); err != nil {
			if ve := (*validation.Error)(nil); errors.As(err, &ve) {
				return ve // it says why: Redis unreachable, or the clock offset to Redis not measured yet
			}
			return &validation.Error{Reason: validation.ReasonUnavailable, Detail: "the store is not reachable", Err: err}
		}
		resp := readyResponse{Status: "ready"}
		if at, ok := full.since(); ok {
			resp.Store, resp.StoreFullAt = "full", &at
			resp.Detail = "Redis reached its maxmemory: checks and other writes answer 503 store_full, redemptions of live holds still work"
		}
		return c.JSON(http.StatusOK, resp)
	}
}

func handleJWKS(t Tokens) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		return c.Blob(http.StatusOK, "application/jwk-set+json", t.JWKS())
	}
}

// checkResponse is a check as the API shows it. The OTP appears only while
// the check is held, and only to its placer (the domain keeps the secret
// for no one else); the TOTP secret never appears.
type checkResponse struct {
	CheckID      string     `json:"check_id"`
	CustomerID   string     `json:"customer_id"`
	Product      string     `json:"product"`
	Status       string     `json:"status"`
	Fence        int64      `json:"fence"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	PlacedBy     string     `json:"placed_by"`
	AgentID      string     `json:"agent_id,omitempty"`
	OTP          string     `json:"otp,omitempty"`
	OTPExpiresAt *time.Time `json:"otp_expires_at,omitempty"`
	Token        string     `json:"token,omitempty"`
	RedeemedBy   string     `json:"redeemed_by,omitempty"`
	GrantedAt    *time.Time `json:"granted_at,omitempty"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
	EndReason    string     `json:"end_reason,omitempty"`
	// PolicyVersion is the policy version the check was decided under.
	PolicyVersion string `json:"policy_version,omitempty"`
}

func (s *Server) checkView(ch validation.Check) (checkResponse, error) {
	r := checkResponse{
		CheckID: ch.ID, CustomerID: ch.CustomerID, Product: ch.Product, Status: string(ch.Status),
		Fence: ch.Fence, CreatedAt: ch.CreatedAt, ExpiresAt: ch.ExpiresAt,
		PlacedBy: ch.PlacedBy, AgentID: ch.AgentID, RedeemedBy: ch.RedeemedBy,
		GrantedAt: optTime(ch.GrantedAt), EndedAt: optTime(ch.EndedAt), PolicyVersion: ch.PolicyVersion,
	}
	if ch.Status == validation.StatusCancelled {
		r.EndReason = ch.EndReason
	}
	if ch.Status == validation.StatusHeld && len(ch.Secret) > 0 {
		code, until, err := s.cfg.OTPCode(ch.Secret, s.cfg.Now())
		if err != nil {
			return r, err
		}
		r.OTP, r.OTPExpiresAt = code, &until
	}
	return r, nil
}

type createCheckRequest struct {
	CustomerID string `json:"customer_id"`
	Product    string `json:"product"`
	AgentID    string `json:"agent_id"`
}

// handleCreateCheck: POST /v1/checks. 201 with the OTP and the approval
// token, or a 409 refusal. With Idempotency-Key, a retry replays the first
// outcome (header Idempotent-Replayed: true).
func (s *Server) handleCreateCheck() echo.HandlerFunc {
	return func(c echo.Context) error {
		var req createCheckRequest
		if err := decode(c, &req); err != nil {
			return err
		}
		ch, replayed, err := s.cfg.Service.Check(c.Request().Context(), actorOf(c), validation.CheckInput{
			CustomerID: req.CustomerID, Product: req.Product, AgentID: req.AgentID,
			IdempotencyKey: c.Request().Header.Get("Idempotency-Key"),
		})
		if replayed {
			c.Response().Header().Set("Idempotent-Replayed", "true")
		}
		if err != nil {
			return redactErr(err, actorOf(c))
		}
		resp, err := s.checkView(ch)
		if err != nil {
			return err
		}
		if resp.Token, err = s.sign(ch); err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		c.Response().Header().Set(echo.HeaderLocation, "/v1/checks/"+ch.ID)
		return c.JSON(http.StatusCreated, resp)
	}
}

// sign issues the approval token of a check. Ed25519 is deterministic, so
// an idempotent replay returns the very same token.
func (s *Server) sign(ch validation.Check) (string, error) {
	rule, _ := s.cfg.Policy.At(ch.CreatedAt).Rule(ch.Product) // the version it was decided under
	return s.cfg.Tokens.Sign(tokensClaims(ch, rule.Redeemers))
}

// handleGetCheck: GET /v1/checks/{check_id}; otp and otp_expires_at only
// for the check's placer.
func (s *Server) handleGetCheck() echo.HandlerFunc {
	return func(c echo.Context) error {
		ch, err := s.cfg.Service.GetCheck(c.Request().Context(), actorOf(c), c.Param("check_id"))
		if err != nil {
			return err
		}
		resp, err := s.checkView(ch)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, resp)
	}
}

// handleCancelCheck: DELETE /v1/checks/{check_id} → 204; who may is the
// domain's to decide (validation.Service.Cancel).
func (s *Server) handleCancelCheck() echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := s.cfg.Service.Cancel(c.Request().Context(), actorOf(c), c.Param("check_id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

type redeemRequest struct {
	Token      string `json:"token"`
	CustomerID string `json:"customer_id"`
	Product    string `json:"product"`
	OTP        string `json:"otp"`
}

type grantResponse struct {
	CheckID    string    `json:"check_id"`
	CustomerID string    `json:"customer_id"`
	Product    string    `json:"product"`
	Fence      int64     `json:"fence"`
	GrantedAt  time.Time `json:"granted_at"`
	RedeemedBy string    `json:"redeemed_by"`
}

func grantView(g validation.Grant) grantResponse {
	return grantResponse{CheckID: g.CheckID, CustomerID: g.CustomerID, Product: g.Product,
		Fence: g.Fence, GrantedAt: g.GrantedAt, RedeemedBy: g.RedeemedBy}
}

// handleRedeem: POST /v1/redemptions with {"token"} or {"customer_id",
// "product","otp"}. 201 on the first success, 200 when the same client
// repeats a redemption it completed.
func (s *Server) handleRedeem() echo.HandlerFunc {
	return func(c echo.Context) error {
		var req redeemRequest
		if err := decode(c, &req); err != nil {
			return err
		}
		ctx, actor := c.Request().Context(), actorOf(c)
		var (
			g        validation.Grant
			replayed bool
			err      error
		)
		switch {
		case req.Token != "" && req.CustomerID == "" && req.Product == "" && req.OTP == "":
			// arbiter's own token: its signature is verified only when it
			// carries no secret of its check (ParseOwn), for the store
			// compares the secret with the check's digest instead.
			claims, verr := s.cfg.Tokens.ParseOwn(req.Token, actor.ID)
			if verr != nil {
				// The client reads plain words; the log keeps the error.
				return &validation.Error{Reason: validation.ReasonTokenInvalid, Detail: tokens.Detail(verr), Err: verr}
			}
			proof := validation.TokenProof{Secret: claims.Secret, Verified: claims.Secret == ""}
			g, replayed, err = s.cfg.Service.RedeemToken(ctx, actor, claims.CustomerID, claims.Product, claims.CheckID, proof)
		case req.Token == "" && req.OTP != "":
			if req.CustomerID == "" || req.Product == "" {
				return validation.Errorf(validation.ReasonInvalidRequest, "an OTP redemption needs customer_id, product and otp")
			}
			g, replayed, err = s.cfg.Service.RedeemOTP(ctx, actor, req.CustomerID, req.Product, req.OTP)
		default:
			return validation.Errorf(validation.ReasonInvalidRequest, `send {"token"} or {"customer_id","product","otp"}`)
		}
		if err != nil {
			return err
		}
		status := http.StatusCreated
		if replayed {
			status = http.StatusOK
		}
		return c.JSON(status, grantView(g))
	}
}

type customerResponse struct {
	CustomerID string        `json:"customer_id"`
	Products   []productView `json:"products"`
	Hold       *holdView     `json:"hold"`
	Block      *blockView    `json:"block"`
}

type blockView struct {
	Reason string     `json:"reason"`
	Since  time.Time  `json:"since"`
	Until  *time.Time `json:"until,omitempty"`
	By     string     `json:"by"`
}

type productView struct {
	Product    string    `json:"product"`
	Fence      int64     `json:"fence"`
	GrantedAt  time.Time `json:"granted_at"`
	CheckID    string    `json:"check_id"`
	RedeemedBy string    `json:"redeemed_by"`
}

type holdView struct {
	CheckID   string    `json:"check_id"`
	Product   string    `json:"product"`
	ExpiresAt time.Time `json:"expires_at"`
	PlacedBy  string    `json:"placed_by"`
	AgentID   string    `json:"agent_id,omitempty"`
}

// handleGetCustomer: GET /v1/customers/{customer_id}.
func (s *Server) handleGetCustomer() echo.HandlerFunc {
	return func(c echo.Context) error {
		cust, err := s.cfg.Service.Customer(c.Request().Context(), c.Param("customer_id"))
		if err != nil {
			return err
		}
		resp := customerResponse{CustomerID: cust.ID, Products: []productView{}}
		for _, g := range cust.Grants {
			resp.Products = append(resp.Products, productView{Product: g.Product, Fence: g.Fence,
				GrantedAt: g.GrantedAt, CheckID: g.CheckID, RedeemedBy: g.RedeemedBy})
		}
		if h := cust.Hold; h != nil {
			resp.Hold = &holdView{CheckID: h.ID, Product: h.Product, ExpiresAt: h.ExpiresAt, PlacedBy: h.PlacedBy, AgentID: h.AgentID}
		}
		if b := cust.Block; b != nil {
			resp.Block = &blockView{Reason: b.Reason, Since: b.Since, Until: optTime(b.Until), By: b.By}
		}
		return c.JSON(http.StatusOK, resp)
	}
}

// handleRelease: DELETE /v1/customers/{customer_id}/products/{product}
// [?check_id=…] → 204. With check_id only that grant ends (exact
// compensation of one issuance); without, the most recent one.
func (s *Server) handleRelease() echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := s.cfg.Service.Release(c.Request().Context(), actorOf(c), c.Param("customer_id"), c.Param("product"), c.QueryParam("check_id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

type importRequest struct {
	GrantedAt *time.Time `json:"granted_at"`
}

// handleImport: PUT /v1/customers/{customer_id}/products/{product} (admin),
// optional body {"granted_at"} → 201 with the grant, 409 when it would
// break the policy.
func (s *Server) handleImport() echo.HandlerFunc {
	return func(c echo.Context) error {
		var req importRequest
		if c.Request().ContentLength != 0 {
			if err := decode(c, &req); err != nil {
				return err
			}
		}
		var at time.Time
		if req.GrantedAt != nil {
			at = *req.GrantedAt
		}
		g, err := s.cfg.Service.Import(c.Request().Context(), actorOf(c), c.Param("customer_id"), c.Param("product"), at)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, grantView(g))
	}
}

type eventView struct {
	At      time.Time `json:"at"`
	Type    string    `json:"type"`
	Product string    `json:"product,omitempty"`
	CheckID string    `json:"check_id,omitempty"`
	Actor   string    `json:"actor"`
	Agent   string    `json:"agent,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Reasons []string  `json:"reasons,omitempty"`
	Note    string    `json:"note,omitempty"`
	Fence   int64     `json:"fence,omitempty"`
	// PolicyVersion: a decision's (checked, refused, redeemed, imported,
	// a cancellation by the rules), the policy version it was made under.
	PolicyVersion string `json:"policy_version,omitempty"`
}

// handleAudit: GET /v1/customers/{customer_id}/audit?limit=N&type=a,b.
func (s *Server) handleAudit() echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := 0
		if q := c.QueryParam("limit"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 1 || n > 200 {
				return validation.Errorf(validation.ReasonInvalidRequest, "limit must be an integer from 1 to 200")
			}
			limit = n
		}
		var types []validation.EventType
		if q := c.QueryParam("type"); q != "" {
			for t := range strings.SplitSeq(q, ",") {
				types = append(types, validation.EventType(strings.TrimSpace(t)))
			}
		}
		events, err := s.cfg.Service.Audit(c.Request().Context(), c.Param("customer_id"), limit, types...)
		if err != nil {
			return err
		}
		out := make([]eventView, 0, len(events))
		for _, e := range events {
			v := eventView{At: e.At, Type: string(e.Type), Product: e.Product, CheckID: e.CheckID,
				Actor: e.Actor, Agent: e.Agent, Reason: string(e.Reason), Note: e.Note, Fence: e.Fence,
				PolicyVersion: e.PolicyVersion}
			for _, r := range e.Reasons {
				v.Reasons = append(v.Reasons, string(r))
			}
			out = append(out, v)
		}
		return c.JSON(http.StatusOK, map[string]any{"customer_id": validation.CanonicalCustomerID(c.Param("customer_id")), "events": out})
	}
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
