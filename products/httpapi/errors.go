package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
)

// problemTypes is the one table from the service's own reasons to their
// HTTP status and title: a title names the reason in words an applicant's
// screen can show, which the status text ("Conflict") does not. Arbiter's
// refusals keep arbiter's status and title. A reason missing here is a 500.
var problemTypes = map[string]struct {
	status int
	title  string
}{
	issuing.ReasonInvalidRequest:     {http.StatusBadRequest, "Invalid application"},
	issuing.ReasonTokenInvalid:       {http.StatusForbidden, "Approval token is not valid"},
	issuing.ReasonStaleFence:         {http.StatusConflict, "A newer approval exists for this customer"},
	issuing.ReasonAlreadyIssued:      {http.StatusConflict, "Customer already holds this product"},
	issuing.ReasonApplicationClosed:  {http.StatusConflict, "Application already closed: apply anew"},
	issuing.ReasonCompensated:        {http.StatusConflict, "Approval released after a failed issue: apply anew"},
	issuing.ReasonDeclined:           {http.StatusUnprocessableEntity, "Application declined"},
	issuing.ReasonNotFound:           {http.StatusNotFound, "No such product or route"},
	issuing.ReasonIssueFailed:        {http.StatusInternalServerError, "Product could not be issued"},
	issuing.ReasonArbiterUnavailable: {http.StatusServiceUnavailable, "Arbiter could not be reached"},
	reasonUnavailable:                {http.StatusServiceUnavailable, "Service not ready"},
	reasonPayloadTooLarge:            {http.StatusRequestEntityTooLarge, "Request body too large"},
	reasonUnauthorized:               {http.StatusUnauthorized, "Missing or unknown credentials"},
	reasonInternal:                   {http.StatusInternalServerError, "Internal error"},
}

// reasonInternal is a failure that carries no reason of its own.
const reasonInternal = "internal"

// reasonUnavailable: the service is not ready (its database or arbiter's
// keys are not loaded yet).
const reasonUnavailable = "unavailable"

// reasonPayloadTooLarge refuses a body over MaxBodyBytes.
const reasonPayloadTooLarge = "payload_too_large"

// reasonUnauthorized: the holdings feed needs its key (PRODUCTSVC_FEED_KEY),
// or the caller of an application is not one of the service's clients
// (PRODUCTSVC_CLIENTS).
const reasonUnauthorized = "unauthorized"

// problem is the RFC 9457 document of every error answer.
type problem struct {
	Type        string        `json:"type"`
	Title       string        `json:"title"`
	Status      int           `json:"status"`
	Detail      string        `json:"detail,omitempty"`
	Reason      string        `json:"reason"`
	Compensated bool          `json:"compensated,omitempty"`
	Pending     bool          `json:"pending,omitempty"`
	Arbiter     *arbiterError `json:"arbiter,omitempty"`
}

// arbiterError is arbiter's refusal as passed on to the applicant.
type arbiterError struct {
	Status       int                `json:"status"`
	Reason       client.Reason      `json:"reason"`
	Detail       string             `json:"detail,omitempty"`
	HeldProduct  string             `json:"held_product,omitempty"`
	HeldProducts []string           `json:"held_products,omitempty"`
	AttemptsLeft int                `json:"attempts_left,omitempty"`
	Violations   []client.Violation `json:"violations,omitempty"`
}

// ProblemTypeURI prefixes every problem's type; the reason follows.
const ProblemTypeURI = "urn:productsvc:problem:"

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	p := problem{Reason: reasonInternal, Detail: "the service failed; see its log"}
	var e *issuing.Error
	if errors.As(err, &e) {
		p.Reason, p.Detail, p.Compensated, p.Pending = e.Reason, e.Detail, e.Compensated, e.Pending
	}
	pt, ok := problemTypes[p.Reason]
	if !ok {
		pt = problemTypes[reasonInternal]
	}
	p.Status, p.Title = pt.status, pt.title
	if e != nil {
		if a := e.Arbiter; a != nil {
			p.Status, p.Title = a.Status, a.Title
			if p.Title == "" {
				p.Title = "Refused by arbiter"
			}
			p.Arbiter = &arbiterError{Status: a.Status, Reason: a.Reason, Detail: a.Detail, HeldProduct: a.HeldProduct,
				HeldProducts: a.HeldProducts, AttemptsLeft: a.AttemptsLeft, Violations: a.Violations}
			if a.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(a.RetryAfter.Seconds()))))
			}
		}
	}
	p.Type = ProblemTypeURI + p.Reason
	if p.Status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", p.Status, "reason", p.Reason, "err", err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
