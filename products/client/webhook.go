package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The webhook event types arbiter announces (WebhookEvent.Type). A
// receiver should ignore, and acknowledge, a type it does not know: a
// later arbiter may announce more.
const (
	WebhookHoldExpired   = "hold_expired"   // a hold ended unredeemed
	WebhookHoldCancelled = "hold_cancelled" // a hold was cancelled (by its checker, an admin or the rules)
	WebhookGrantReleased = "grant_released" // a product was closed and its grant released
	WebhookGrantImported = "grant_imported" // an admin imported a grant (a product issued outside arbiter)
	WebhookCaseOpened    = "case_opened"    // reconciliation opened a case about the customer
	WebhookCaseResolved  = "case_resolved"  // an admin resolved a case
)

// Webhook errors. Every error of ParseWebhook and WebhookVerifier.Parse
// wraps exactly one of ErrWebhookSignature and ErrWebhookPayload, so a
// receiver can answer 401 to the first and 400 to the second; a timestamp
// outside the tolerance also wraps ErrWebhookTimestamp.
var (
	// ErrWebhookSignature: the headers are missing, the signature does not
	// verify with the secret, or the timestamp is outside the tolerance.
	ErrWebhookSignature = errors.New("webhook: signature not verified")
	// ErrWebhookTimestamp: the webhook-timestamp is more than 5 minutes
	// from now (a replay, or a clock far off); it also wraps
	// ErrWebhookSignature.
	ErrWebhookTimestamp = errors.New("webhook: timestamp outside tolerance")
	// ErrWebhookPayload: the signature verified but the body is not an
	// event (not JSON, no type, no record id, or a record id other than
	// the webhook-id header's).
	ErrWebhookPayload = errors.New("webhook: malformed payload")
)

// WebhookEvent is one announcement of arbiter, as POSTed to a subscriber
// with the Standard Webhooks headers. ID is the record id (webhook-id, also
// Data.ID): a receiver may see an event more than once (delivery is
// at-least-once) and should treat a repeated ID as done. Events of one
// customer arrive in their Seq order.
type WebhookEvent struct {
	ID        string      `json:"-"`
	Type      string      `json:"type"`      // one of the Webhook* constants, or a newer type
	Timestamp time.Time   `json:"timestamp"` // when the event happened
	Data      WebhookData `json:"data"`
}

// WebhookData is the audit event an announcement carries. Fields after
// Actor are set only where the event has them.
type WebhookData struct {
	ID            string    `json:"id"` // "<customer>/<seq>"
	CustomerID    string    `json:"customer_id"`
	Seq           int64     `json:"seq"`   // the event's place in the customer's sequence
	Event         string    `json:"event"` // arbiter's audit event type: expired, cancelled, released, ...
	At            time.Time `json:"at"`
	Product       string    `json:"product"`
	CheckID       string    `json:"check_id"`
	Actor         string    `json:"actor"` // client id, or "arbiter" for expiries
	Agent         string    `json:"agent,omitempty"`
	Reason        Reason    `json:"reason,omitempty"`
	Reasons       []Reason  `json:"reasons,omitempty"`
	Note          string    `json:"note,omitempty"`
	Fence         int64     `json:"fence,omitempty"`
	PolicyVersion string    `json:"policy_version,omitempty"`
}

// WebhookVerifier verifies and decodes the announcements signed with one
// secret. It is safe for concurrent use.
type WebhookVerifier struct {
	wh *standardwebhooks.Webhook
}

// NewWebhookVerifier returns a verifier for secret, "whsec_" and the base64
// of the signing key as arbiter's clients file holds it. Its error never
// quotes the secret.
func NewWebhookVerifier(secret string) (*WebhookVerifier, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, errors.New("webhook secret: not whsec_ followed by a non-empty base64 key")
	}
	return &WebhookVerifier{wh: wh}, nil
}

// Parse verifies the request's signature (webhook-id, webhook-timestamp,
// webhook-signature; the timestamp within 5 minutes of now) over body and
// decodes the event. Errors wrap ErrWebhookSignature or ErrWebhookPayload.
func (v *WebhookVerifier) Parse(h http.Header, body []byte) (WebhookEvent, error) {
	if err := v.wh.Verify(body, h); err != nil {
		if errors.Is(err, standardwebhooks.ErrMessageTooOld) || errors.Is(err, standardwebhooks.ErrMessageTooNew) {
			return WebhookEvent{}, fmt.Errorf("%w: %w: %v", ErrWebhookSignature, ErrWebhookTimestamp, err)
		}
		return WebhookEvent{}, fmt.Errorf("%w: %v", ErrWebhookSignature, err)
	}
	var ev WebhookEvent
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&ev); err != nil {
		return WebhookEvent{}, fmt.Errorf("%w: %v", ErrWebhookPayload, err)
	}
	ev.ID = h.Get(standardwebhooks.HeaderWebhookID)
	switch {
	case ev.Type == "":
		return WebhookEvent{}, fmt.Errorf("%w: no type", ErrWebhookPayload)
	case ev.Data.ID != ev.ID:
		return WebhookEvent{}, fmt.Errorf("%w: data.id %q is not the webhook-id %q", ErrWebhookPayload, ev.Data.ID, ev.ID)
	case ev.Data.CustomerID == "" || ev.Data.Seq <= 0:
		return WebhookEvent{}, fmt.Errorf("%w: no customer_id or seq", ErrWebhookPayload)
	}
	return ev, nil
}

// ParseWebhook verifies and decodes one announcement with secret; see
// WebhookVerifier.Parse. A receiver handling many should keep a
// WebhookVerifier instead. A bad secret is reported as ErrWebhookSignature.
func ParseWebhook(secret string, h http.Header, body []byte) (WebhookEvent, error) {
	v, err := NewWebhookVerifier(secret)
	if err != nil {
		return WebhookEvent{}, fmt.Errorf("%w: %v", ErrWebhookSignature, err)
	}
	return v.Parse(h, body)
}
