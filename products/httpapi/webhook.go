package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
)

// handleWebhook receives arbiter's announcements (Standard Webhooks,
// verified with the shared secret). A hold that expired or was cancelled
// settles this service's unfinished application from its check at once
// (issuing.Service.HoldEnded), instead of at the next reconciliation.
// Every other type, and a hold of another product, is acknowledged and
// ignored. It answers 204 when done, also for an event seen before
// (HoldEnded finds nothing left to do), 401 for a signature that does not
// verify (or a timestamp over 5 minutes off), 400 for a body that is not an
// event, and 503 when arbiter could not be asked about the application, so
// that arbiter sends the event again.
func handleWebhook(svc *issuing.Service, v *client.WebhookVerifier) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
			return &issuing.Error{Reason: reasonPayloadTooLarge, Detail: fmt.Sprintf("the body is over %d bytes", MaxBodyBytes)}
		}
		if err != nil {
			return &issuing.Error{Reason: issuing.ReasonInvalidRequest, Detail: "the body could not be read", Err: err}
		}
		ev, err := v.Parse(r.Header, body)
		switch {
		case errors.Is(err, client.ErrWebhookSignature):
			return &issuing.Error{Reason: reasonUnauthorized, Detail: "the webhook signature does not verify with the shared secret, or its timestamp is over 5 minutes off", Err: err}
		case err != nil:
			return &issuing.Error{Reason: issuing.ReasonInvalidRequest, Detail: err.Error(), Err: err}
		}
		if (ev.Type == client.WebhookHoldExpired || ev.Type == client.WebhookHoldCancelled) && ev.Data.Product == svc.Product {
			rep, err := svc.HoldEnded(r.Context(), ev.Data.CustomerID, ev.Data.CheckID)
			if err != nil {
				return err
			}
			if rep.Left > 0 {
				return &issuing.Error{Reason: issuing.ReasonArbiterUnavailable, Detail: "the application of this check could not be settled with arbiter yet; send the event again"}
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
