package issuing

import (
	"errors"

	"github.com/arbiter-bank/arbiter/products/client"
)

// Reasons of the product service's own refusals. Arbiter's refusals are
// passed on with arbiter's reason (hold_exists, hold_expired, otp_invalid,
// conflicting_product, ...).
const (
	ReasonInvalidRequest     = "invalid_request"
	ReasonTokenInvalid       = "token_invalid"       // offline verification failed
	ReasonStaleFence         = "stale_fence"         // a newer approval was already seen for the customer
	ReasonAlreadyIssued      = "already_issued"      // the customer holds this product from another check
	ReasonDeclined           = "declined"            // underwriting said no
	ReasonNotFound           = "not_found"           // no such product here
	ReasonIssueFailed        = "issue_failed"        // the local write failed after arbiter granted
	ReasonArbiterUnavailable = "arbiter_unavailable" // arbiter could not be reached; see Pending
	ReasonApplicationClosed  = "application_closed"  // the check's product was issued and closed: apply anew
	ReasonCompensated        = "compensated"         // the check's grant was released after a failed issue: apply anew
)

// Error is every refusal and failure of Service. Arbiter is set when arbiter
// refused, and then Reason is arbiter's.
type Error struct {
	Reason string
	Detail string
	// Compensated: arbiter had granted the product, the local write failed,
	// and the grant was released again. The customer holds nothing.
	Compensated bool
	// Pending: the outcome at arbiter is unknown or unfinished; Reconcile
	// settles it (issues the product or releases the grant) later.
	Pending bool
	Arbiter *client.Error
	Err     error
}

func (e *Error) Error() string {
	msg := "issuing: " + e.Reason
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of err, "internal" when it carries none.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "internal"
}

// fromArbiter turns an arbiter call's error into an *Error: a refusal (a 4xx
// answer) keeps arbiter's reason; anything else means arbiter could not say.
func fromArbiter(err error, detail string) *Error {
	var ae *client.Error
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		return &Error{Reason: string(ae.Reason), Detail: ae.Detail, Arbiter: ae, Err: err}
	}
	return &Error{Reason: ReasonArbiterUnavailable, Detail: detail, Err: err}
}

// refused reports whether err is arbiter's definite refusal (a 4xx).
func refused(err error) bool {
	var ae *client.Error
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500
}
