package validation

import (
	"fmt"
	"time"
)

// The errors a Store returns for what it found, each built from its facts
// and worded here, once: every Store (redisstore on Redis, inmem in
// memory) calls these, so that both say the same thing in the same words,
// and a Store's adapter reports facts without writing sentences.

// Refusal is the error of a refused check, redemption or import: vs (at
// least one) are every failed rule, in evaluation order, and the first is
// its Reason. The
// Service words each violation (Service.explain).
func Refusal(vs []Violation) *Error {
	e := &Error{Reason: vs[0].Reason, Violations: vs}
	for _, v := range vs {
		switch v.Reason {
		case ReasonHoldExists:
			e.HeldProduct, e.HeldUntil, e.HeldBy = v.Product, v.Until, v.By
		case ReasonConflictingProduct:
			e.HeldProducts = append(e.HeldProducts, v.Product)
		}
	}
	return e
}

// HoldExpired is the redemption of a check that is not the live hold:
// status is the check's (expired, cancelled), or "unknown" when the store
// does not know it.
func HoldExpired(status string) *Error {
	return &Error{Reason: ReasonHoldExpired, Detail: "the hold is no longer live (" + status + "); request a new check"}
}

// AlreadyRedeemed is the redemption of a check that client by redeemed.
func AlreadyRedeemed(by string) *Error {
	return &Error{Reason: ReasonAlreadyRedeemed, Detail: "the check was already redeemed by " + by}
}

// OTPLocked is the redemption of a check whose hold too many wrong codes
// burnt.
func OTPLocked() *Error {
	return &Error{Reason: ReasonOTPLocked, Detail: "too many wrong codes: the hold is burnt; request a new check"}
}

// OTPRateLimited refuses one-time codes for the customer for retryAfter.
func OTPRateLimited(retryAfter time.Duration) *Error {
	return &Error{Reason: ReasonOTPRateLimited, RetryAfter: retryAfter,
		Detail: fmt.Sprintf("too many wrong codes for this customer; one-time codes are refused for %s (approval tokens still work)", retryAfter.Round(time.Second))}
}

// GrantReleased is the redemption of check checkID, whose grant was
// released since it was redeemed.
func GrantReleased(checkID string) *Error {
	return &Error{Reason: ReasonGrantReleased,
		Detail: "check " + checkID + " was redeemed, but its grant has been released since; a new application needs a new check"}
}

// WrongCode is a wrong one-time code for the live hold, attemptsLeft
// more allowed before it burns.
func WrongCode(attemptsLeft int) *Error {
	return &Error{Reason: ReasonOTPInvalid, AttemptsLeft: &attemptsLeft, Detail: fmt.Sprintf("wrong code; %d attempts left", attemptsLeft)}
}

// NotTheRedeemingCode is the replay of an OTP redemption with another code
// than the one that redeemed the check.
func NotTheRedeemingCode() *Error {
	return &Error{Reason: ReasonOTPInvalid, Detail: "the check was redeemed, and not with this code"}
}

// TokenMismatch is an approval token whose field (product, secret) is
// not its check's.
func TokenMismatch(field string) *Error {
	return &Error{Reason: ReasonTokenInvalid, Detail: "the token's " + field + " does not match its check"}
}

// CheckNotHeld is the cancel of a check that has ended (status).
func CheckNotHeld(status CheckStatus) *Error {
	return &Error{Reason: ReasonCheckNotHeld, Detail: "the check is " + string(status) + ", not held"}
}

// CheckNotFound is an operation on a check the store does not know.
func CheckNotFound() *Error {
	return &Error{Reason: ReasonCheckNotFound, Detail: "no such check"}
}

// CheckGone is the read of check id, unknown or ended longer than
// retention ago.
func CheckGone(id string, retention time.Duration) *Error {
	return Errorf(ReasonCheckNotFound, "no check %q (checks are kept %s after they end)", id, retention)
}

// CancelForbidden is the cancel of a check for product by a client that
// neither placed it nor redeems product.
func CancelForbidden(product string) *Error {
	return &Error{Reason: ReasonForbidden,
		Detail: "this client may cancel only the checks it placed and those of the products it redeems, not this check for " + product}
}

// IdempotencyKeyReused is a check whose Idempotency-Key came with another
// request body before.
func IdempotencyKeyReused() *Error {
	return &Error{Reason: ReasonIdempotencyKeyReused, Detail: "this Idempotency-Key was used with another request body"}
}

// CheckAbandoned answers a check the store runs after it was given up as
// lost (Store.Abandon): unavailable, since nobody waits for its answer and
// a retry decides again.
func CheckAbandoned() *Error {
	return &Error{Reason: ReasonUnavailable, Detail: "the check was given up as lost; retry"}
}

// NotBlocked is the unblock of a customer who is not blocked.
func NotBlocked(customerID string) *Error {
	return Errorf(ReasonNotFound, "customer %s is not blocked", customerID)
}

// GrantNotFound is the release of a product the customer does not hold.
func GrantNotFound(customerID, product string) *Error {
	return Errorf(ReasonGrantNotFound, "customer %s holds no %s", customerID, product)
}

// NoOpenCase is the resolution of a case the customer does not have.
func NoOpenCase(customerID string) *Error {
	return Errorf(ReasonNotFound, "customer %s has no open case", customerID)
}

// StoreFull is a write the store refused for lack of memory; nothing was
// changed. cause is kept for logs.
func StoreFull(cause error) *Error {
	return &Error{Reason: ReasonStoreFull, Err: cause,
		Detail: "the store is full (Redis reached its maxmemory) and refuses new data; nothing was changed; retry later"}
}

// OutboxFull is a decision the store refused because the outbox of the
// customer's slot is at its bound: the archive has not taken records for a
// while, and a decision is never made without its record. Nothing was
// changed.
func OutboxFull() *Error {
	return &Error{Reason: ReasonOutboxFull,
		Detail: "the audit archive is behind and this customer's outbox is full; nothing was changed; retry later"}
}

// StoreUnavailable is a store that could not be reached; cause is kept for
// logs (and may carry ErrOutcomeUnknown).
func StoreUnavailable(cause error) *Error {
	return &Error{Reason: ReasonUnavailable, Detail: "the store is unavailable; retry later", Err: cause}
}

// RedemptionNotDurable is a redemption the store recorded but only acked
// of the want replicas confirmed within timeout; its retry replays it.
func RedemptionNotDurable(acked, want int64, timeout time.Duration) *Error {
	return &Error{Reason: ReasonNotDurable,
		Detail: fmt.Sprintf("the redemption is recorded but only %d of %d replicas confirmed it within %s; retry the same request, it returns the grant once replicated",
			acked, want, timeout)}
}

// AnswerNotDurable is an answer (a read, a release) that only acked of the
// want replicas confirmed within timeout, so a failover could undo it.
func AnswerNotDurable(acked, want int64, timeout time.Duration) *Error {
	return &Error{Reason: ReasonNotDurable,
		Detail: fmt.Sprintf("only %d of %d replicas confirmed what this answer shows within %s, so a failover could still undo it; retry",
			acked, want, timeout)}
}

// ClockNotMeasured is a request that depends on time before the store's
// clock offset was first measured.
func ClockNotMeasured() *Error {
	return &Error{Reason: ReasonUnavailable, Detail: "the clock offset to Redis has not been measured yet"}
}

// ClockStale is a request that depends on time while the store's clock
// offset was last measured age ago, longer than allowed.
func ClockStale(age time.Duration) *Error {
	return &Error{Reason: ReasonUnavailable, Detail: fmt.Sprintf("the clock offset to Redis was last measured %s ago", age.Round(time.Second))}
}
