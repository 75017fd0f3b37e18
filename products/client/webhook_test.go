package client_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/arbiter-bank/arbiter/products/client"
)

// webhookSecret is the card service's secret in these examples: "whsec_"
// and the base64 of 32 bytes.
const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4q7bqjfJv1Y="

// signed returns the headers arbiter sends with body, signed with secret
// by the Standard Webhooks library at time at.
func signed(tb testing.TB, secret, id string, at time.Time, body []byte) http.Header {
	if tb != nil {
		tb.Helper()
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		log.Fatal(err)
	}
	sig, err := wh.Sign(id, at, body)
	if err != nil {
		log.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

const expiredBody = `{"type":"hold_expired","timestamp":"2026-12-07T10:00:00.123Z","data":{"id":"C-1/123","customer_id":"C-1","seq":123,"event":"expired","at":"2026-12-07T10:00:00.123Z","product":"credit_card","check_id":"chk_1","actor":"arbiter","fence":7,"policy_version":"v3"}}`

// A product service's webhook handler verifies each announcement and
// acts on the ones it knows.
func ExampleParseWebhook() {
	// What arbiter POSTs: the body and its Standard Webhooks headers.
	body := []byte(expiredBody)
	header := signed(nil, webhookSecret, "C-1/123", time.Now(), body)

	ev, err := client.ParseWebhook(webhookSecret, header, body)
	switch {
	case errors.Is(err, client.ErrWebhookSignature):
		fmt.Println("401: not from arbiter")
	case err != nil:
		fmt.Println("400:", err)
	case ev.Type == client.WebhookHoldExpired:
		fmt.Println(ev.ID, ev.Type, ev.Data.CustomerID, ev.Data.Seq, ev.Data.Product, ev.Data.CheckID, ev.Data.Fence)
	}
	// Output:
	// C-1/123 hold_expired C-1 123 credit_card chk_1 7
}

func TestParseWebhook(t *testing.T) {
	now := time.Now()
	body := []byte(expiredBody)
	t.Run("decodes every field", func(t *testing.T) {
		full := []byte(`{"type":"hold_cancelled","timestamp":"2026-12-07T10:00:00.123456789Z","data":{"id":"C-1/5","customer_id":"C-1","seq":5,"event":"cancelled","at":"2026-12-07T10:00:00.123Z","product":"credit_card","check_id":"chk_2","actor":"card-service","agent":"agent-7","reason":"rating_too_low","reasons":["rating_too_low","family_limit"],"note":"n","fence":3,"policy_version":"v1","later":"ignored"}}`)
		ev, err := client.ParseWebhook(webhookSecret, signed(t, webhookSecret, "C-1/5", now, full), full)
		if err != nil {
			t.Fatal(err)
		}
		want := client.WebhookEvent{ID: "C-1/5", Type: client.WebhookHoldCancelled,
			Timestamp: time.Date(2026, 12, 7, 10, 0, 0, 123456789, time.UTC),
			Data: client.WebhookData{ID: "C-1/5", CustomerID: "C-1", Seq: 5, Event: "cancelled",
				At: time.Date(2026, 12, 7, 10, 0, 0, 123000000, time.UTC), Product: "credit_card", CheckID: "chk_2",
				Actor: "card-service", Agent: "agent-7", Reason: client.ReasonRatingTooLow,
				Reasons: []client.Reason{client.ReasonRatingTooLow, client.ReasonFamilyLimit}, Note: "n", Fence: 3, PolicyVersion: "v1"}}
		if got := fmt.Sprintf("%+v", ev); got != fmt.Sprintf("%+v", want) {
			t.Fatalf("ParseWebhook = %s\nwant %+v", got, want)
		}
	})
	for _, tc := range []struct {
		name   string
		header http.Header
		body   string
		want   error
	}{
		{"other secret", signed(t, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "C-1/123", now, body), expiredBody, client.ErrWebhookSignature},
		{"tampered body", signed(t, webhookSecret, "C-1/123", now, body), expiredBody[:len(expiredBody)-2] + `8}}`, client.ErrWebhookSignature},
		{"no headers", http.Header{}, expiredBody, client.ErrWebhookSignature},
		{"too old", signed(t, webhookSecret, "C-1/123", now.Add(-6*time.Minute), body), expiredBody, client.ErrWebhookTimestamp},
		{"too new", signed(t, webhookSecret, "C-1/123", now.Add(6*time.Minute), body), expiredBody, client.ErrWebhookSignature},
		{"not json", signed(t, webhookSecret, "C-1/123", now, []byte("{")), "{", client.ErrWebhookPayload},
		{"other id", signed(t, webhookSecret, "C-1/124", now, body), expiredBody, client.ErrWebhookPayload},
		{"no type", signed(t, webhookSecret, "C-1/1", now, []byte(`{"data":{"id":"C-1/1","customer_id":"C-1","seq":1}}`)), `{"data":{"id":"C-1/1","customer_id":"C-1","seq":1}}`, client.ErrWebhookPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.ParseWebhook(webhookSecret, tc.header, []byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseWebhook error = %v, want %v", err, tc.want)
			}
			if sig, pay := errors.Is(err, client.ErrWebhookSignature), errors.Is(err, client.ErrWebhookPayload); sig == pay {
				t.Errorf("error %v: signature %v, payload %v; want exactly one", err, sig, pay)
			}
		})
	}
}
