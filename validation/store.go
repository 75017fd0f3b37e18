package validation

import (
	"context"
	"time"
)

// Store keeps holds, grants, checks and audit trails, and applies every
// decision that guards the invariant atomically: each method is one atomic
// step (one Lua script in redisstore). Refusals are returned as *Error with
// their Violations (Detail left empty: the Service words them).
//
// Every method takes the current time from its request, so behaviour that
// depends on time can be tested without waiting; key expiry itself is the
// store's own clock.
type Store interface {
	// Hold applies the rule to the customer's block, open case, rating,
	// grants and live hold and, only if every rule passes, places a hold for
	// req.Rule.HoldTTL. An open reconciliation case refuses (ErrCaseOpen) a
	// product of the case and every product that excludes one of them.
	// With a MinRating and no cached score it returns ErrRatingNeeded. With an
	// idempotency key, a repeat of the same request returns the first
	// outcome (replayed true); a different request under the same key is
	// ErrIdempotencyKeyReused.
	Hold(ctx context.Context, req HoldRequest) (c Check, replayed bool, err error)

	// Redeem turns the live hold into a grant, naming it by check id (token)
	// or by product and TOTP code. It re-applies the rule to the grants, so
	// a grant that would break the policy is never written. A repeat by the
	// client that redeemed returns the grant with replayed true. Errors:
	// ErrHoldExpired, ErrAlreadyRedeemed, ErrOTPInvalid, ErrOTPLocked,
	// ErrCheckNotFound, and the refusals of Hold. ErrCaseOpen, as Hold
	// decides it, comes before any OTP is counted and keeps the hold, so
	// the same redemption succeeds once the case is resolved.
	Redeem(ctx context.Context, req RedeemRequest) (g Grant, replayed bool, err error)

	// Check returns a check by id (ErrCheckNotFound), with its Secret while held.
	Check(ctx context.Context, customerID, checkID string, now time.Time) (Check, error)

	// Cancel ends a live hold: ErrCheckNotHeld when the check is not the
	// live hold any more, ErrForbidden when its product is not in
	// req.Products (nil means any product) and it was not placed by
	// req.Placer.
	Cancel(ctx context.Context, req CancelRequest) (Check, error)

	// Customer returns the customer's grants and live hold.
	Customer(ctx context.Context, customerID string, now time.Time) (Customer, error)

	// Release ends the customer's grant of a product from req.CheckID, or
	// the most recent one when CheckID is empty: ErrGrantNotFound when there
	// is none.
	Release(ctx context.Context, req ReleaseRequest) (Grant, error)

	// Import records a grant that already exists in a product system, if
	// the rule allows it next to the customer's grants.
	Import(ctx context.Context, req ImportRequest) (Grant, error)

	// Audit returns up to limit of the customer's most recent events, newest
	// first: state changes and attempts (see EventType.Attempt) merged; only
	// those of the given types when types are given.
	Audit(ctx context.Context, customerID string, limit int, now time.Time, types ...EventType) ([]Event, error)

	// Eligibility evaluates exactly the rules Hold would, placing nothing:
	// the failed rules in order (none: the customer may take the product)
	// and what became of the rating rule.
	// Like Hold it may return ErrRatingNeeded.
	Eligibility(ctx context.Context, req EligibilityRequest) (EligibilityResult, error)

	// Block puts the customer on the blocklist and cancels a live hold
	// (returned, nil when there was none). Grants are not touched.
	Block(ctx context.Context, req BlockRequest) (*Check, error)

	// Unblock lifts a block: ErrNotFound when the customer is not blocked.
	Unblock(ctx context.Context, customerID, actor string, now time.Time) error

	// Abandon gives up a check whose Hold failed with ErrOutcomeUnknown:
	// if its hold was placed and no idempotent replay delivered it since,
	// the hold is cancelled (reason unknown_outcome); if the check script
	// has not run, a tombstone makes it place nothing should Redis run it
	// late. It returns what it did.
	Abandon(ctx context.Context, req AbandonRequest) (AbandonOutcome, error)

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
}

// AbandonRequest is the input of Store.Abandon.
type AbandonRequest struct {
	CustomerID string
	CheckID    string
	Actor      string // recorded as who cancelled: "arbiter"
	Now        time.Time
}

// AbandonOutcome says what Store.Abandon did.
type AbandonOutcome string

// The outcomes of Store.Abandon.
const (
	AbandonCancelled AbandonOutcome = "cancelled" // the hold was live and undelivered: cancelled
	AbandonTombstone AbandonOutcome = "tombstone" // the script had not run: it never will place the hold
	AbandonDelivered AbandonOutcome = "delivered" // a replay gave the check to its client: kept
	AbandonEnded     AbandonOutcome = "ended"     // the check had ended already
)

// RatingInput tells a store how to apply a rule's MinRating.
type RatingInput struct {
	Score    *int          // a fresh score from the bureau, cached for CacheTTL; nil: use the cached one
	Skip     bool          // the bureau is unavailable and the policy allows: the rule passes unevaluated
	CacheTTL time.Duration // how long a fresh score is cached
}

// EligibilityRequest is the input of Store.Eligibility.
type EligibilityRequest struct {
	Rule       Rule
	CustomerID string
	Rating     RatingInput
	Now        time.Time
}

// BlockRequest is the input of Store.Block.
type BlockRequest struct {
	CustomerID string
	Reason     string
	Until      time.Time // zero: until lifted
	Actor      string
	Now        time.Time
}

// HoldRequest is the input of Store.Hold.
type HoldRequest struct {
	Rule           Rule
	Rating         RatingInput
	CustomerID     string
	CheckID        string
	Secret         []byte // TOTP key stored in the hold
	TokenHash      string // digest of the approval token's secret (TokenHash), kept by the check
	Actor          string
	AgentID        string
	Now            time.Time
	IdempotencyKey string // already scoped to the client; "" for none
	RequestHash    string // fingerprint of the request body for the key
	IdempotencyTTL time.Duration
}

// RedeemRequest is the input of Store.Redeem: CheckID for a token, or Code
// (with Rule.Product) for an OTP.
type RedeemRequest struct {
	Rule       Rule
	CustomerID string
	CheckID    string
	// TokenHash is the digest of the token's secret (TokenHash), which
	// must be the check's; "" for a token without a secret, whose
	// signature the caller verified: then only a check keeping no digest
	// (placed before checks kept one) is redeemed.
	TokenHash   string
	Code        string
	Actor       string
	Now         time.Time
	MaxAttempts int
	// OTPFailures wrong codes per customer within OTPWindow, across holds,
	// close OTP redemptions for the customer until the window ends; zero
	// means DefaultOTPFailures and DefaultOTPWindow.
	OTPFailures int
	OTPWindow   time.Duration
	// OTPPeriod and OTPSkew are the TOTP parameters codes are verified
	// with; zero means DefaultOTPPeriod and DefaultOTPSkew (package
	// tokens issues codes with the same, as a test pins).
	OTPPeriod time.Duration
	OTPSkew   int
}

// CancelRequest is the input of Store.Cancel.
type CancelRequest struct {
	CustomerID string
	CheckID    string
	Actor      string
	Agent      string   // the branch agent acting through the actor, if any
	Products   []string // products the actor may cancel; nil means any
	Placer     string   // the actor may also cancel the checks this client placed; "" for none
	Now        time.Time
}

// ReleaseRequest is the input of Store.Release.
type ReleaseRequest struct {
	CustomerID string
	Product    string
	CheckID    string // the grant's check; "" for the most recent grant of Product
	Actor      string
	Now        time.Time
	// KeepEnded is how long the store remembers when the product ended,
	// for the cooling-off rules (Policy.KeepEnded); zero means
	// MinKeepEnded.
	KeepEnded time.Duration
}

// ImportRequest is the input of Store.Import.
type ImportRequest struct {
	Rule       Rule
	CustomerID string
	CheckID    string
	Actor      string
	GrantedAt  time.Time
	Now        time.Time
}
