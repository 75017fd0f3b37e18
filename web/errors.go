package web

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/validation"
)

// problemTypes is the one table from a domain reason to its HTTP status and
// title. A reason missing here is a 500.
var problemTypes = map[validation.Reason]struct {
	status int
	title  string
}{
	validation.ReasonInvalidRequest:        {http.StatusBadRequest, "Invalid request"},
	validation.ReasonUnauthorized:          {http.StatusUnauthorized, "Missing or unknown credentials"},
	validation.ReasonForbidden:             {http.StatusForbidden, "Not allowed for this client"},
	validation.ReasonNotRedeemer:           {http.StatusForbidden, "Client is not a redeemer of this product"},
	validation.ReasonTokenInvalid:          {http.StatusForbidden, "Approval token is not valid"},
	validation.ReasonHoldExists:            {http.StatusConflict, "Another check is in progress for this customer"},
	validation.ReasonConflictingProduct:    {http.StatusConflict, "Customer holds a product that excludes this one"},
	validation.ReasonAlreadyHoldsProduct:   {http.StatusConflict, "Customer already holds this product"},
	validation.ReasonIdempotencyKeyReused:  {http.StatusUnprocessableEntity, "Idempotency-Key reused with another request"},
	validation.ReasonCheckNotFound:         {http.StatusNotFound, "No such check"},
	validation.ReasonCheckNotHeld:          {http.StatusConflict, "Check is not held any more"},
	validation.ReasonHoldExpired:           {http.StatusGone, "Hold expired or was cancelled"},
	validation.ReasonOTPInvalid:            {http.StatusUnprocessableEntity, "Wrong one-time code"},
	validation.ReasonOTPLocked:             {http.StatusGone, "Too many wrong codes: hold burnt"},
	validation.ReasonAlreadyRedeemed:       {http.StatusConflict, "Check already redeemed by another client"},
	validation.ReasonGrantNotFound:         {http.StatusNotFound, "Customer does not hold this product"},
	validation.ReasonGrantReleased:         {http.StatusGone, "The grant of this check was released"},
	validation.ReasonOTPRateLimited:        {http.StatusTooManyRequests, "Too many wrong codes for this customer"},
	validation.ReasonNotFound:              {http.StatusNotFound, "Not found"},
	validation.ReasonCustomerBlocked:       {http.StatusConflict, "Customer is blocked"},
	validation.ReasonCaseOpen:              {http.StatusConflict, "Customer has an open case to resolve first"},
	validation.ReasonFamilyLimit:           {http.StatusConflict, "Customer holds as many products of a family as the policy allows"},
	validation.ReasonCoolingOff:            {http.StatusConflict, "A product ended too recently for this one"},
	validation.ReasonRatingTooLow:          {http.StatusConflict, "Credit rating too low for this product"},
	validation.ReasonRatingUnavailable:     {http.StatusServiceUnavailable, "Credit rating bureau unavailable"},
	validation.ReasonUnavailable:           {http.StatusServiceUnavailable, "Temporarily unavailable"},
	validation.ReasonNotDurable:            {http.StatusServiceUnavailable, "Not yet replicated; retry"},
	validation.ReasonStoreFull:             {http.StatusServiceUnavailable, "Store full: new data refused"},
	validation.ReasonOutboxFull:            {http.StatusServiceUnavailable, "Audit archive behind: decision not made"},
	validation.ReasonReconciliationRunning: {http.StatusConflict, "A reconciliation is running"},
	reasonPayloadTooLarge:                  {http.StatusRequestEntityTooLarge, "Request body too large"},
	reasonMethodNotAllowed:                 {http.StatusMethodNotAllowed, "Method not allowed"},
	reasonRateLimited:                      {http.StatusTooManyRequests, "Too many requests"},
}

// Reasons of the HTTP layer alone.
const (
	reasonPayloadTooLarge  validation.Reason = "payload_too_large" // over MaxBodyBytes
	reasonMethodNotAllowed validation.Reason = "method_not_allowed"
	reasonRateLimited      validation.Reason = "rate_limited"
)

// problem is an RFC 9457 problem document with arbiter's extensions.
type problem struct {
	Type         string                 `json:"type"`
	Title        string                 `json:"title"`
	Status       int                    `json:"status"`
	Detail       string                 `json:"detail,omitempty"`
	Reason       validation.Reason      `json:"reason"`
	Violations   []validation.Violation `json:"violations,omitempty"`
	HeldProduct  string                 `json:"held_product,omitempty"`
	HeldUntil    *time.Time             `json:"held_until,omitempty"`
	HeldBy       string                 `json:"held_by,omitempty"`
	HeldProducts []string               `json:"held_products,omitempty"`
	AttemptsLeft *int                   `json:"attempts_left,omitempty"`
	// PolicyVersion: a refusal's, the policy version that decided it.
	PolicyVersion string `json:"policy_version,omitempty"`
	RequestID     string `json:"request_id,omitempty"`

	retryAfter time.Duration // becomes the Retry-After header
}

// ProblemTypeURI is the prefix of every problem's type; the reason follows.
const ProblemTypeURI = "urn:arbiter:problem:"

// errorHandler is echo's HTTPErrorHandler: every error a handler or
// middleware returns is written here, and only here. 5xx are logged, but
// store_full, which fails every write alike, goes to full (storefull.go).
func errorHandler(log *slog.Logger, full *storeFull) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := toProblem(err)
		p.RequestID = c.Response().Header().Get(echo.HeaderXRequestID)
		spanReason(c.Request().Context(), p.Reason)
		switch {
		case p.Reason == validation.ReasonStoreFull:
			full.refused(c.Path(), err)
		case p.Status >= 500:
			attrs := []any{"method", c.Request().Method, "route", c.Path(), "status", p.Status, "request_id", p.RequestID, "err", err}
			if id := traceID(c.Request().Context()); id != "" {
				attrs = append(attrs, "trace_id", id)
			}
			log.Error("request failed", attrs...)
		}
		h := c.Response().Header()
		switch {
		case p.retryAfter > 0:
			h.Set("Retry-After", strconv.Itoa(int(math.Ceil(p.retryAfter.Seconds()))))
		case p.Reason == validation.ReasonStoreFull:
			h.Set("Retry-After", strconv.Itoa(storeFullRetryAfter))
		case p.Reason == validation.ReasonHoldExists && p.HeldUntil != nil:
			h.Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(time.Until(*p.HeldUntil).Seconds())))))
		case (p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests) && h.Get("Retry-After") == "":
			h.Set("Retry-After", "1") // a handler that knows better (the sign-in throttle) sets its own
		}
		h.Set(echo.HeaderContentType, "application/problem+json")
		h.Set("Cache-Control", "no-store")
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(p.Status)
			return
		}
		_ = c.JSON(p.Status, p)
	}
}

func toProblem(err error) problem {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		// Errors raised by echo itself (routing, binding).
		reason := validation.ReasonInvalidRequest
		switch he.Code {
		case http.StatusNotFound:
			reason = validation.ReasonNotFound
		case http.StatusMethodNotAllowed:
			reason = reasonMethodNotAllowed
		case http.StatusUnauthorized:
			reason = validation.ReasonUnauthorized
		case http.StatusRequestEntityTooLarge:
			reason = reasonPayloadTooLarge
		case http.StatusTooManyRequests:
			reason = reasonRateLimited
		}
		return fromReason(&validation.Error{Reason: reason, Detail: http.StatusText(he.Code)})
	}
	var ve *validation.Error
	if errors.As(err, &ve) {
		return fromReason(ve)
	}
	return problem{
		Type: ProblemTypeURI + string(validation.ReasonInternal), Title: "Internal error",
		Status: http.StatusInternalServerError, Reason: validation.ReasonInternal,
		Detail: "arbiter failed to handle the request; nothing was changed unless the request id's log says so",
	}
}

func fromReason(e *validation.Error) problem {
	pt, ok := problemTypes[e.Reason]
	if !ok {
		pt.status, pt.title = http.StatusInternalServerError, "Internal error"
	}
	p := problem{
		Type: ProblemTypeURI + string(e.Reason), Title: pt.title, Status: pt.status,
		Detail: e.Detail, Reason: e.Reason, Violations: e.Violations,
		HeldProduct: e.HeldProduct, HeldBy: e.HeldBy, HeldProducts: e.HeldProducts,
		AttemptsLeft: e.AttemptsLeft, PolicyVersion: e.PolicyVersion, retryAfter: e.RetryAfter,
	}
	if !e.HeldUntil.IsZero() {
		t := e.HeldUntil
		p.HeldUntil = &t
	}
	return p
}
