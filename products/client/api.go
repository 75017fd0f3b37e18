package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// CheckStatus is the life-cycle state of a check.
type CheckStatus string

// A check is held until it is redeemed, cancelled or expires.
const (
	StatusHeld      CheckStatus = "held"
	StatusRedeemed  CheckStatus = "redeemed"
	StatusCancelled CheckStatus = "cancelled"
	StatusExpired   CheckStatus = "expired"
)

// CheckRequest asks arbiter whether a customer may take a product now.
type CheckRequest struct {
	CustomerID string `json:"customer_id"`
	Product    string `json:"product"`
	// AgentID names the branch agent or end user the check is made for.
	AgentID string `json:"agent_id,omitempty"`
	// IdempotencyKey makes retries of this check replay the hold it placed
	// (for 24 h). A refusal is not recorded: a retry after one is decided
	// again. The key's scope is this client and CustomerID: the same key for
	// another customer is another request. Empty means one is generated for
	// this call; set it yourself to make your own retries (across process
	// restarts) safe too, one key per application.
	IdempotencyKey string `json:"-"`
}

// Check is one decision that placed a hold, and what became of it. OTP,
// OTPExpiresAt and Token are set only in the answer to Check (and OTP also
// by GetCheck while the check is held).
type Check struct {
	ID           string      `json:"check_id"`
	CustomerID   string      `json:"customer_id"`
	Product      string      `json:"product"`
	Status       CheckStatus `json:"status"`
	Fence        int64       `json:"fence"`
	CreatedAt    time.Time   `json:"created_at"`
	ExpiresAt    time.Time   `json:"expires_at"`
	PlacedBy     string      `json:"placed_by"`
	AgentID      string      `json:"agent_id,omitempty"`
	OTP          string      `json:"otp,omitempty"` // held, and only for the client that placed it
	OTPExpiresAt time.Time   `json:"otp_expires_at,omitzero"`
	Token        string      `json:"token,omitempty"`
	RedeemedBy   string      `json:"redeemed_by,omitempty"`
	GrantedAt    time.Time   `json:"granted_at,omitzero"`
	EndedAt      time.Time   `json:"ended_at,omitzero"`
	EndReason    string      `json:"end_reason,omitempty"`
	// PolicyVersion is the policy version the check was decided under.
	PolicyVersion string `json:"policy_version,omitempty"`
	// Replayed is true when arbiter replayed an earlier outcome for the same
	// Idempotency-Key instead of deciding again.
	Replayed bool `json:"-"`
}

// Grant is a product a customer holds at arbiter.
type Grant struct {
	CheckID    string    `json:"check_id"`
	CustomerID string    `json:"customer_id"`
	Product    string    `json:"product"`
	Fence      int64     `json:"fence"`
	GrantedAt  time.Time `json:"granted_at"`
	RedeemedBy string    `json:"redeemed_by"`
	// Replayed is true when this client had already redeemed the hold and
	// arbiter returned the same grant again (HTTP 200 instead of 201).
	Replayed bool `json:"-"`
}

// Hold is a customer's live hold.
type Hold struct {
	CheckID   string    `json:"check_id"`
	Product   string    `json:"product"`
	ExpiresAt time.Time `json:"expires_at"`
	PlacedBy  string    `json:"placed_by"`
	AgentID   string    `json:"agent_id,omitempty"`
}

// Customer is what arbiter's ledger knows of one customer now.
type Customer struct {
	ID       string  `json:"customer_id"`
	Products []Grant `json:"products"`
	Hold     *Hold   `json:"hold"` // nil when no check is in progress
}

// Grant returns the customer's grant of product, if any.
func (c *Customer) Grant(product string) (Grant, bool) {
	for _, g := range c.Products {
		if g.Product == product {
			return g, true
		}
	}
	return Grant{}, false
}

// Event is one entry of a customer's audit trail.
type Event struct {
	At      time.Time `json:"at"`
	Type    string    `json:"type"` // checked, refused, redeemed, otp_failed, cancelled, expired, released, imported
	Product string    `json:"product,omitempty"`
	CheckID string    `json:"check_id,omitempty"`
	Actor   string    `json:"actor"`
	Agent   string    `json:"agent,omitempty"`
	Reason  Reason    `json:"reason,omitempty"`
	Fence   int64     `json:"fence,omitempty"`
	// PolicyVersion: a decision's, the policy version it was made under.
	PolicyVersion string `json:"policy_version,omitempty"`
}

// Check asks arbiter for a check and, when the customer may take the
// product, returns the held check with its OTP and approval token. Refusals
// are ErrHoldExists (another check is in progress: see HeldProduct,
// HeldUntil, RetryAfter), ErrConflictingProduct and ErrAlreadyHoldsProduct,
// with every failed rule in Violations. The request always carries an
// Idempotency-Key, so it is retried safely.
func (c *Client) Check(ctx context.Context, r CheckRequest) (*Check, error) {
	r.CustomerID = CanonicalCustomerID(r.CustomerID)
	key := r.IdempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	var ch Check
	resp, err := c.do(ctx, request{
		op: "check", method: http.MethodPost, path: "/v1/checks", body: r,
		header: http.Header{"Idempotency-Key": {key}}, retry: retrySafe,
	}, &ch)
	if err != nil {
		return nil, err
	}
	ch.Replayed = resp.header.Get("Idempotent-Replayed") == "true"
	return &ch, nil
}

// GetCheck returns a check by id; ErrCheckNotFound when arbiter does not
// know it (or no longer keeps it).
func (c *Client) GetCheck(ctx context.Context, checkID string) (*Check, error) {
	var ch Check
	if _, err := c.do(ctx, request{op: "get check", method: http.MethodGet,
		path: "/v1/checks/" + url.PathEscape(checkID), retry: retrySafe}, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// Cancel ends a held check so the customer is free to apply again. It
// returns ErrCheckNotHeld when the check was redeemed, cancelled or expired
// already, ErrCheckNotFound for unknown ids, and ErrForbidden when this
// client neither placed the check nor redeems its product.
func (c *Client) Cancel(ctx context.Context, checkID string) error {
	_, err := c.do(ctx, request{op: "cancel", method: http.MethodDelete,
		path: "/v1/checks/" + url.PathEscape(checkID), retry: retryUnsent}, nil)
	return err
}

// Redemption names the hold to redeem: either Token alone, or CustomerID,
// Product and the OTP the customer read out.
type Redemption struct {
	Token      string `json:"token,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	Product    string `json:"product,omitempty"`
	OTP        string `json:"otp,omitempty"`
}

// Redeem turns the customer's live hold into a grant: from then on arbiter
// refuses any product that excludes this one. Repeating a redemption this
// client completed returns the same grant with Replayed set, so Redeem is
// retried safely — while the grant lives, and over OTP only with the same
// code: once the grant is released every redemption of the check is
// ErrGrantReleased, and the application must start over with a new check.
// Refusals include ErrHoldExpired (no live hold: expired, cancelled or never
// placed), ErrOTPInvalid (see AttemptsLeft), ErrOTPLocked
// (the hold was burnt by wrong codes), ErrTokenInvalid, ErrNotRedeemer,
// ErrAlreadyRedeemed (by another client), ErrConflictingProduct and
// ErrOTPRateLimited (429, with RetryAfter: it is returned at once, never
// slept on). No retry starts after a token's hold has expired.
func (c *Client) Redeem(ctx context.Context, r Redemption) (*Grant, error) {
	r.CustomerID = CanonicalCustomerID(r.CustomerID)
	if (r.Token == "") == (r.OTP == "") {
		return nil, &Error{Op: "redeem", Reason: ReasonInvalidRequest, Detail: "give either Token or CustomerID, Product and OTP"}
	}
	var g Grant
	resp, err := c.do(ctx, request{op: "redeem", method: http.MethodPost, path: "/v1/redemptions", body: r, retry: retrySafe,
		notAfter: tokenExpiry(r.Token)}, &g)
	if err != nil {
		return nil, err
	}
	g.Replayed = resp.status == http.StatusOK
	return &g, nil
}

// Customer returns the customer's grants and live hold as arbiter's ledger
// has them now. An unknown customer is one with no products and no hold.
func (c *Client) Customer(ctx context.Context, customerID string) (*Customer, error) {
	customerID = CanonicalCustomerID(customerID)
	var cu Customer
	if _, err := c.do(ctx, request{op: "customer", method: http.MethodGet,
		path: "/v1/customers/" + url.PathEscape(customerID), retry: retrySafe}, &cu); err != nil {
		return nil, err
	}
	for i := range cu.Products {
		cu.Products[i].CustomerID = cu.ID
	}
	return &cu, nil
}

// Release ends the customer's grant of product at arbiter (the product was
// closed, or its issuance is being compensated), so an excluded product can
// be granted again. With a checkID it ends exactly the grant redeemed from
// that check (exact compensation); with "" the most recent grant of the
// product. It returns ErrGrantNotFound when the customer holds no such grant
// and ErrNotRedeemer when this client may not release it.
func (c *Client) Release(ctx context.Context, customerID, product, checkID string) error {
	customerID = CanonicalCustomerID(customerID)
	path := "/v1/customers/" + url.PathEscape(customerID) + "/products/" + url.PathEscape(product)
	if checkID != "" {
		path += "?check_id=" + url.QueryEscape(checkID)
	}
	_, err := c.do(ctx, request{op: "release", method: http.MethodDelete, path: path, retry: retryUnsent}, nil)
	return err
}

// Audit returns up to limit of the customer's most recent events, newest
// first; limit 0 means arbiter's default (50), the most is 200.
func (c *Client) Audit(ctx context.Context, customerID string, limit int) ([]Event, error) {
	customerID = CanonicalCustomerID(customerID)
	path := "/v1/customers/" + url.PathEscape(customerID) + "/audit"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out struct {
		Events []Event `json:"events"`
	}
	if _, err := c.do(ctx, request{op: "audit", method: http.MethodGet, path: path, retry: retrySafe}, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

// Ready reports whether arbiter answers /readyz with 200: nil when it does,
// an error (ErrUnavailable while its store is unreachable) otherwise. It is
// not retried.
func (c *Client) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(c.withRoute(ctx, "ready"), http.MethodGet, c.base.String()+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return &netError{op: "ready", err: err}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &Error{Op: "ready", Status: resp.StatusCode, Reason: ReasonUnavailable, Detail: "arbiter is not ready"}
	}
	return nil
}

// IsTemporary reports whether err is worth retrying later as it is: a
// network failure, ErrUnavailable or ErrRateLimited. Refusals are not.
func IsTemporary(err error) bool {
	var ne *netError
	return errors.As(err, &ne) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRateLimited)
}
