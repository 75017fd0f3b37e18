package validation

import (
	"errors"
	"fmt"
	"time"
)

// Reason is a stable, machine-readable code for why an operation did not
// succeed. Reasons are part of the public API: clients switch on them, so
// they are never renamed.
type Reason string

// The reasons arbiter returns. The HTTP status of each lives in package web.
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
	ReasonGrantReleased        Reason = "grant_released" // redeemed, then released: never redeemable again
	ReasonOTPRateLimited       Reason = "otp_rate_limited"
	ReasonNotFound             Reason = "not_found"
	ReasonCustomerBlocked      Reason = "customer_blocked"
	ReasonRatingTooLow         Reason = "rating_too_low"
	ReasonRatingUnavailable    Reason = "rating_unavailable"
	ReasonUnavailable          Reason = "unavailable"
	ReasonNotDurable           Reason = "not_durable"
	ReasonStoreFull            Reason = "store_full"
	// ReasonOutboxFull: the outbox of the customer's slot holds as many
	// records as it may while the archive is not taking them; the decision
	// was not made (no decision without its record).
	ReasonOutboxFull Reason = "outbox_full"
	ReasonInternal   Reason = "internal"
	// ReasonReconciliationRunning: a reconciliation is already running
	// (on this or another instance); wait for it.
	ReasonReconciliationRunning Reason = "reconciliation_running"
	// ReasonCaseOpen: the customer has an open reconciliation case (a
	// double holding) that concerns the product, which is one of the
	// case's or excludes one of them: its checks and redemptions are
	// refused until an admin resolves the case.
	ReasonCaseOpen Reason = "case_open"
	// ReasonFamilyLimit: the customer holds as many products of a family
	// as a family limit allows (Violation.Rule names it).
	ReasonFamilyLimit Reason = "family_limit"
	// ReasonCoolingOff: a product of a cooling-off rule ended too recently
	// (Violation.Rule names the rule, Until says when the period ends).
	ReasonCoolingOff Reason = "cooling_off"
)

// Sentinel errors, one per reason, for errors.Is. An *Error matches the
// sentinel of its Reason whatever its details:
//
//	if errors.Is(err, validation.ErrHoldExists) { ... }
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
	ErrUnavailable          = &Error{Reason: ReasonUnavailable}
	// ErrNotDurable: a redemption was applied on the Redis master but fewer
	// replicas than required acknowledged it in time; retrying the same
	// redemption replays it once it is replicated.
	ErrNotDurable = &Error{Reason: ReasonNotDurable}
	// ErrStoreFull: the store refused a write for lack of memory (Redis at
	// maxmemory with noeviction); nothing was changed. Operations that free
	// memory first, such as a redemption of a live hold, still succeed.
	ErrStoreFull = &Error{Reason: ReasonStoreFull}
	// ErrOutboxFull: the durable record's outbox reached its bound (the
	// archive has not taken records for a while); nothing was changed.
	ErrOutboxFull = &Error{Reason: ReasonOutboxFull}
)

// ErrOutcomeUnknown is in the chain of an ErrUnavailable whose request may
// have been carried out: the script was sent, and its reply was lost (a
// timeout, a dropped connection). Service.Check gives such a check up
// through Store.Abandon, so it never locks the customer unseen.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// ErrRatingNeeded is returned by Store.Hold and Store.Eligibility when the
// rating rule applies, no score is cached and every other rule passes: the
// Service then asks the bureau and calls again with the score. It is a
// signal between Service and Store, never shown to clients.
var ErrRatingNeeded = errors.New("rating needed")

// Error is the one error type of arbiter's domain: a stable Reason, a human
// sentence, and the details a client needs to act on it. Refusals of a check
// list every rule that failed, in evaluation order, in Violations; the first
// one is the Reason.
type Error struct {
	Reason Reason
	Detail string // a sentence a branch agent can read out

	Violations   []Violation   // refusals: every failed rule, in order
	HeldProduct  string        // hold_exists: the product of the live hold
	HeldUntil    time.Time     // hold_exists: when it expires
	HeldBy       string        // hold_exists: the client that placed it
	HeldProducts []string      // conflicting_product: the products in the way
	AttemptsLeft *int          // otp_invalid: wrong codes still allowed
	RetryAfter   time.Duration // otp_rate_limited: when OTP redemptions open again
	// PolicyVersion: a refusal's policy version, the one in force when it
	// was decided.
	PolicyVersion string

	Err error // the cause, for 5xx and logs; never shown to clients
}

// Violation is one failed rule of a refusal.
type Violation struct {
	Reason  Reason    `json:"reason"`
	Detail  string    `json:"detail"`
	Product string    `json:"product,omitempty"` // the product in the way
	CheckID string    `json:"check_id,omitempty"`
	Since   time.Time `json:"since,omitzero"` // when the product was granted
	Until   time.Time `json:"until,omitzero"` // when the hold expires
	By      string    `json:"by,omitempty"`   // who placed the hold or the block
	Note    string    `json:"note,omitempty"` // customer_blocked: the block's reason; case_open: the case's own words

	// case_open: the products of the case (Since: when it was opened).
	Products []string `json:"products,omitempty"`

	// rating_too_low: the numbers, shown to admins only.
	RequiredRating *int `json:"required_rating,omitempty"`
	Rating         *int `json:"rating,omitempty"`

	// family_limit, cooling_off: the policy rule's name. family_limit:
	// the limit, the family in words (Note) and what counts against it,
	// oldest first. cooling_off: the product that ended (Product), when
	// (Since) and when the period ends (Until).
	Rule  string    `json:"rule,omitempty"`
	Limit int       `json:"limit,omitempty"`
	Held  []Holding `json:"held,omitempty"`
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
	msg := string(e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Reason, so that the
// package's sentinels match any error of their reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// Errorf returns an *Error with the given reason and a formatted detail.
func Errorf(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of err, ReasonInternal when err carries none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonInternal
}
