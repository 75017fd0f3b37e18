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

// statuses maps the service's own reasons to HTTP statuses; arbiter's
// refusals keep arbiter's status.
var statuses = map[string]int{
	issuing.ReasonInvalidRequest:     http.StatusBadRequest,
	issuing.ReasonTokenInvalid:       http.StatusForbidden,
	issuing.ReasonStaleFence:         http.StatusConflict,
	issuing.ReasonAlreadyIssued:      http.StatusConflict,
	issuing.ReasonApplicationClosed:  http.StatusConflict,
	issuing.ReasonCompensated:        http.StatusConflict,
	issuing.ReasonDeclined:           http.StatusUnprocessableEntity,
	issuing.ReasonNotFound:           http.StatusNotFound,
	issuing.ReasonIssueFailed:        http.StatusInternalServerError,
	issuing.ReasonArbiterUnavailable: http.StatusServiceUnavailable,
	"unavailable":                    http.StatusServiceUnavailable,
	reasonPayloadTooLarge:            http.StatusRequestEntityTooLarge,
	reasonUnauthorized:               http.StatusUnauthorized,
}

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
	p := problem{Reason: "internal", Status: http.StatusInternalServerError, Detail: "the service failed; see its log"}
	var e *issuing.Error
	if errors.As(err, &e) {
		p.Reason, p.Detail, p.Compensated, p.Pending = e.Reason, e.Detail, e.Compensated, e.Pending
		if st, ok := statuses[e.Reason]; ok {
			p.Status = st
		}
		if a := e.Arbiter; a != nil {
			p.Status = a.Status
			p.Arbiter = &arbiterError{Status: a.Status, Reason: a.Reason, Detail: a.Detail, HeldProduct: a.HeldProduct,
				HeldProducts: a.HeldProducts, AttemptsLeft: a.AttemptsLeft, Violations: a.Violations}
			if a.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(a.RetryAfter.Seconds()))))
			}
		}
	}
	p.Type = ProblemTypeURI + p.Reason
	p.Title = http.StatusText(p.Status)
	if p.Status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", p.Status, "reason", p.Reason, "err", err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
