package client

import (
	"fmt"
	"time"
)

// Reason is arbiter's stable, machine-readable code for a refusal or error:
// the "reason" member of every problem document.
type Reason string

// The reasons arbiter returns, and the few this client adds.
const (
	ReasonInvalidRequest       Reason = "invalid_request"
	ReasonUnauthorized         Reason = "unauthorized"
	ReasonForbidden            Reason = "forbidden"
	ReasonNotRedeemer          Reason = "not_redeemer"
	ReasonTokenInvalid         Reason = "token_invalid"
	ReasonHoldExists           Reason = "hold_exists"
	ReasonConflictingProduct   Reason = "conflicting_product"
	ReasonAlreadyHoldsProduct  Reason = "already_holds_product"
	ReasonIdempotencyKeyReused Reason = "idempotency_key_reused"
	ReasonCheckNotFound        Reason = "check_not_found"
	ReasonCheckNotHeld         Reason = "check_not_held"
	ReasonHoldExpired          Reason = "hold_expired"
	ReasonOTPInvalid           Reason = "otp_invalid"
	ReasonOTPLocked            Reason = "otp_locked"
	ReasonAlreadyRedeemed      Reason = "already_redeemed"
	ReasonGrantNotFound        Reason = "grant_not_found"
	ReasonGrantReleased        Reason = "grant_released"
	ReasonOTPRateLimited       Reason = "otp_rate_limited"
	ReasonNotFound             Reason = "not_found"
	ReasonCustomerBlocked      Reason = "customer_blocked"
	ReasonRatingTooLow         Reason = "rating_too_low"
	ReasonRatingUnavailable    Reason = "rating_unavailable"
	ReasonNotDurable           Reason = "not_durable"
	ReasonMethodNotAllowed     Reason = "method_not_allowed"
	ReasonUnavailable          Reason = "unavailable"
	ReasonStoreFull            Reason = "store_full"  // 503: Redis reached maxmemory; nothing changed, retry later
	ReasonOutboxFull           Reason = "outbox_full" // 503: the audit archive is behind; nothing changed, retry later
	ReasonRateLimited          Reason = "rate_limited"
	ReasonPayloadTooLarge      Reason = "payload_too_large" // 413: the body is over 64 KiB
	ReasonInternal             Reason = "internal"
	// ReasonReconciliationRunning: 409, a reconciliation is running already.
	ReasonReconciliationRunning Reason = "reconciliation_running"
	// ReasonCaseOpen: 409, the customer has an open reconciliation case
	// about this product or one it excludes; checks and redemptions of it
	// are refused until an admin resolves the case (a refused redemption
	// keeps its hold).
	ReasonCaseOpen Reason = "case_open"
	// ReasonFamilyLimit: 409, the customer holds as many products of a
	// family as a limit of the policy allows (Violation.Rule names it,
	// Limit and Held say how many and which).
	ReasonFamilyLimit Reason = "family_limit"
	// ReasonCoolingOff: 409, a product of a cooling-off rule ended too
	// recently (Violation.Rule names it; Product ended at Since, the
	// period ends at Until).
	ReasonCoolingOff Reason = "cooling_off"
	// ReasonUnexpected is set by the client when arbiter (or a proxy in
	// front of it) answered with a status and body it does not document.
	ReasonUnexpected Reason = "unexpected_response"
)

// Sentinel errors, one per reason. An *Error matches the sentinel of its
// Reason whatever its details, so errors.Is(err, ErrHoldExists) holds for
// every hold_exists refusal.
var (
	ErrInvalidRequest       = &Error{Reason: ReasonInvalidRequest}
	ErrUnauthorized         = &Error{Reason: ReasonUnauthorized}
	ErrForbidden            = &Error{Reason: ReasonForbidden}
	ErrNotRedeemer          = &Error{Reason: ReasonNotRedeemer}
	ErrTokenInvalid         = &Error{Reason: ReasonTokenInvalid}
	ErrHoldExists           = &Error{Reason: ReasonHoldExists}
	ErrConflictingProduct   = &Error{Reason: ReasonConflictingProduct}
	ErrAlreadyHoldsProduct  = &Error{Reason: ReasonAlreadyHoldsProduct}
	ErrIdempotencyKeyReused = &Error{Reason: ReasonIdempotencyKeyReused}
	ErrCheckNotFound        = &Error{Reason: ReasonCheckNotFound}
	ErrCheckNotHeld         = &Error{Reason: ReasonCheckNotHeld}
	ErrHoldExpired          = &Error{Reason: ReasonHoldExpired}
	ErrOTPInvalid           = &Error{Reason: ReasonOTPInvalid}
	ErrOTPLocked            = &Error{Reason: ReasonOTPLocked}
	ErrAlreadyRedeemed      = &Error{Reason: ReasonAlreadyRedeemed}
	ErrGrantNotFound        = &Error{Reason: ReasonGrantNotFound}
	ErrGrantReleased        = &Error{Reason: ReasonGrantReleased}
	ErrOTPRateLimited       = &Error{Reason: ReasonOTPRateLimited}
	ErrNotFound             = &Error{Reason: ReasonNotFound}
	ErrCustomerBlocked      = &Error{Reason: ReasonCustomerBlocked}
	ErrCaseOpen             = &Error{Reason: ReasonCaseOpen}
	ErrFamilyLimit          = &Error{Reason: ReasonFamilyLimit}
	ErrCoolingOff           = &Error{Reason: ReasonCoolingOff}
	ErrRatingTooLow         = &Error{Reason: ReasonRatingTooLow}
	ErrRatingUnavailable    = &Error{Reason: ReasonRatingUnavailable}
	ErrNotDurable           = &Error{Reason: ReasonNotDurable}
	ErrMethodNotAllowed     = &Error{Reason: ReasonMethodNotAllowed}
	ErrUnavailable          = &Error{Reason: ReasonUnavailable}
	ErrStoreFull            = &Error{Reason: ReasonStoreFull}
	ErrOutboxFull           = &Error{Reason: ReasonOutboxFull}
	ErrRateLimited          = &Error{Reason: ReasonRateLimited}
	ErrPayloadTooLarge      = &Error{Reason: ReasonPayloadTooLarge}
	ErrInternal             = &Error{Reason: ReasonInternal}
	// ErrReconciliationRunning: another reconciliation holds the lease.
	ErrReconciliationRunning = &Error{Reason: ReasonReconciliationRunning}
	ErrUnexpected            = &Error{Reason: ReasonUnexpected}
)

// Error is arbiter's answer when it is not a success: the problem document
// (RFC 9457) with arbiter's extensions. Offline token refusals of
// VerifyToken are Errors too, with Reason token_invalid and Status 0.
type Error struct {
	Op     string // the client method: "check", "redeem", ...
	Status int    // HTTP status; 0 for refusals made by the client itself
	Reason Reason
	Title  string
	Detail string // a sentence a branch agent can read out

	Violations   []Violation // check refusals: every rule that failed, in order
	HeldProduct  string      // hold_exists: the product of the live hold
	HeldUntil    time.Time   // hold_exists: when that hold expires
	HeldBy       string      // hold_exists: the client that placed it
	HeldProducts []string    // conflicting_product: the products in the way
	AttemptsLeft int         // otp_invalid: wrong codes still allowed
	RetryAfter   time.Duration
	RequestID    string // arbiter's request id, for its logs
	// PolicyVersion: a refusal's, the policy version that decided it.
	PolicyVersion string
	// Retried: this answer came to a retry, after an earlier try failed
	// in a way that leaves its outcome unknown. A refusal then does not
	// prove the request was never carried out (the first try may have
	// been), so settle with arbiter rather than trust it.
	Retried bool

	Err error // the cause of client-side errors (offline token refusals)
}

// Violation is one failed rule of a refusal.
type Violation struct {
	Reason  Reason    `json:"reason"`
	Detail  string    `json:"detail"`
	Product string    `json:"product,omitempty"`
	CheckID string    `json:"check_id,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Until   time.Time `json:"until,omitzero"`
	By      string    `json:"by,omitempty"`
	// Products: case_open, the products of the customer's open case
	// (Since: when it was opened).
	Products []string `json:"products,omitempty"`
	// Note: customer_blocked, the block's reason; case_open, the case's
	// words; family_limit, the family in words.
	Note string `json:"note,omitempty"`
	// Rule: family_limit and cooling_off, the policy rule's name.
	Rule string `json:"rule,omitempty"`
	// Limit: family_limit, how many products of the family may be held.
	Limit int `json:"limit,omitempty"`
	// Held: family_limit, what counts against the limit, oldest first.
	Held []Holding `json:"held,omitempty"`
}

// Holding is a product counted against a family limit: a grant, or the
// live hold (Until: when it expires).
type Holding struct {
	Product string    `json:"product"`
	CheckID string    `json:"check_id"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until,omitzero"`
}

func (e *Error) Error() string {
	msg := "arbiter"
	if e.Op != "" {
		msg += ": " + e.Op
	}
	msg += ": " + string(e.Reason)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (%d)", e.Status)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause of a client-side error, nil for arbiter's answers.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Reason, so that the
// package's sentinels match any error of their reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// problem is the wire form of an arbiter problem document.
type problem struct {
	Type          string      `json:"type"`
	Title         string      `json:"title"`
	Status        int         `json:"status"`
	Detail        string      `json:"detail"`
	Reason        Reason      `json:"reason"`
	Violations    []Violation `json:"violations"`
	HeldProduct   string      `json:"held_product"`
	HeldUntil     time.Time   `json:"held_until"`
	HeldBy        string      `json:"held_by"`
	HeldProducts  []string    `json:"held_products"`
	AttemptsLeft  int         `json:"attempts_left"`
	RequestID     string      `json:"request_id"`
	PolicyVersion string      `json:"policy_version"`
}

func (p problem) err(op string, status int, retryAfter time.Duration) *Error {
	e := &Error{
		Op: op, Status: status, Reason: p.Reason, Title: p.Title, Detail: p.Detail,
		Violations: p.Violations, HeldProduct: p.HeldProduct, HeldUntil: p.HeldUntil,
		HeldBy: p.HeldBy, HeldProducts: p.HeldProducts, AttemptsLeft: p.AttemptsLeft,
		RetryAfter: retryAfter, RequestID: p.RequestID, PolicyVersion: p.PolicyVersion,
	}
	if e.Reason == "" {
		e.Reason = ReasonUnexpected
		if e.Detail == "" {
			e.Detail = fmt.Sprintf("HTTP %d without a problem document", status)
		}
	}
	return e
}
