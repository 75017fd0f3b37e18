package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/httpapi"
	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

// webhookSecret is the card service's webhook secret in these tests.
const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4q7bqjfJv1Y="

// holdEvent is arbiter's announcement that customer's hold of check ended.
func holdEvent(typ, customer, checkID, product string, seq int64) (id string, body []byte) {
	id = customer + "/" + strconv.FormatInt(seq, 10)
	event := map[string]string{client.WebhookHoldExpired: "expired", client.WebhookHoldCancelled: "cancelled"}[typ]
	return id, []byte(`{"type":"` + typ + `","timestamp":"2026-12-07T10:00:00.123Z","data":{"id":"` + id +
		`","customer_id":"` + customer + `","seq":` + strconv.FormatInt(seq, 10) + `,"event":"` + event +
		`","at":"2026-12-07T10:00:00.123Z","product":"` + product + `","check_id":"` + checkID + `","actor":"arbiter"}}`)
}

// signedRequest is the POST arbiter's sender makes: body signed with
// secret by the Standard Webhooks library, now.
func signedRequest(tb testing.TB, url, secret, id string, body []byte) *http.Request {
	tb.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign(id, now, body)
	if err != nil {
		tb.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.RequestURI = ""
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	return req
}

// TestWebhookRoute runs the whole service: the route verifies arbiter's
// signature, and is off without PRODUCTSVC_WEBHOOK_SECRET.
func TestWebhookRoute(t *testing.T) {
	url, _ := startService(t, map[string]string{"PRODUCTSVC_WEBHOOK_SECRET": webhookSecret})
	id, body := holdEvent(client.WebhookHoldExpired, "C-1", "chk_unknown", "credit_card", 5)
	t.Run("bad signature 401", func(t *testing.T) {
		req := signedRequest(t, url+"/webhooks/arbiter", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", id, body)
		if status, reason, _ := problemOf(t, req); status != http.StatusUnauthorized || reason != "unauthorized" {
			t.Fatalf("status %d reason %q, want 401 unauthorized", status, reason)
		}
	})
	t.Run("malformed body 400", func(t *testing.T) {
		req := signedRequest(t, url+"/webhooks/arbiter", webhookSecret, id, []byte(`{"type":`))
		if status, reason, _ := problemOf(t, req); status != http.StatusBadRequest || reason != "invalid_request" {
			t.Fatalf("status %d reason %q, want 400 invalid_request", status, reason)
		}
	})
	t.Run("unknown check 204", func(t *testing.T) {
		for range 2 { // a duplicate delivery too
			if status, _, _ := problemOf(t, signedRequest(t, url+"/webhooks/arbiter", webhookSecret, id, body)); status != http.StatusNoContent {
				t.Fatalf("status %d, want 204", status)
			}
		}
	})
	t.Run("off without a secret: 404", func(t *testing.T) {
		url, _ := startService(t, nil)
		if status, reason, _ := problemOf(t, signedRequest(t, url+"/webhooks/arbiter", webhookSecret, id, body)); status != http.StatusNotFound || reason != "not_found" {
			t.Fatalf("status %d reason %q, want 404 not_found", status, reason)
		}
	})
	t.Run("a malformed secret stops the start", func(t *testing.T) {
		env := map[string]string{"PRODUCTSVC_PRODUCT": "credit_card", "PRODUCTSVC_ID": "card-service", "PRODUCTSVC_ARBITER_KEY": "k",
			"PRODUCTSVC_DB": filepath.Join(t.TempDir(), "card.db"), "PRODUCTSVC_WEBHOOK_SECRET": "whsec_not base64!"}
		err := run(context.Background(), []string{"productsvc"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "PRODUCTSVC_WEBHOOK_SECRET") || strings.Contains(err.Error(), "not base64!") {
			t.Fatalf("run = %v, want an error naming PRODUCTSVC_WEBHOOK_SECRET without quoting it", err)
		}
	})
}

// ledgerArbiter answers Customer from what the test sets: no grant and no
// hold unless told otherwise. Nothing else is called by a webhook.
type ledgerArbiter struct {
	issuing.Arbiter
	down bool
}

func (a *ledgerArbiter) Customer(_ context.Context, id string) (*client.Customer, error) {
	if a.down {
		return nil, errors.New("connection refused")
	}
	return &client.Customer{ID: id}, nil
}

// TestWebhookDropsPendingApplication: a hold that ended drops the
// unfinished application of its check at once, as reconciliation would
// later, and every repeat or unrelated event is a harmless 204.
func TestWebhookDropsPendingApplication(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "card.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	arb := &ledgerArbiter{}
	svc := &issuing.Service{Product: "credit_card", ClientID: "card-service", Arbiter: arb, Store: st, Log: slog.New(slog.DiscardHandler)}
	for _, check := range []string{"chk_1", "chk_2", "chk_3"} {
		if _, err := st.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C-" + check[4:], CheckID: check, Fence: 1, Channel: issuing.ChannelToken}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := webhookVerifier(config{WebhookSecret: webhookSecret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Service: svc, Logger: svc.Log, Webhooks: v,
		Ready: func(context.Context) error { return nil }}))
	defer srv.Close()
	post := func(typ, customer, check, product string, seq int64) int {
		t.Helper()
		id, body := holdEvent(typ, customer, check, product, seq)
		status, _, _ := problemOf(t, signedRequest(t, srv.URL+"/webhooks/arbiter", webhookSecret, id, body))
		return status
	}
	pendings := func() []string {
		t.Helper()
		ps, err := st.Pendings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var checks []string
		for _, p := range ps {
			checks = append(checks, p.CheckID)
		}
		return checks
	}

	for _, step := range []struct {
		name              string
		typ, customer, ck string
		product           string
		down              bool
		status            int
		left              []string
	}{
		{"hold_expired drops its application", client.WebhookHoldExpired, "C-1", "chk_1", "credit_card", false, 204, []string{"chk_2", "chk_3"}},
		{"a duplicate delivery is 204", client.WebhookHoldExpired, "C-1", "chk_1", "credit_card", false, 204, []string{"chk_2", "chk_3"}},
		{"an unknown check is 204 and harmless", client.WebhookHoldExpired, "C-9", "chk_9", "credit_card", false, 204, []string{"chk_2", "chk_3"}},
		{"another product's hold is ignored", client.WebhookHoldCancelled, "C-2", "chk_2", "personal_loan", false, 204, []string{"chk_2", "chk_3"}},
		{"arbiter unreachable: 503, sent again later", client.WebhookHoldCancelled, "C-2", "chk_2", "credit_card", true, 503, []string{"chk_2", "chk_3"}},
		{"hold_cancelled drops its application", client.WebhookHoldCancelled, "C-2", "chk_2", "credit_card", false, 204, []string{"chk_3"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			arb.down = step.down
			if got := post(step.typ, step.customer, step.ck, step.product, 7); got != step.status {
				t.Fatalf("status %d, want %d", got, step.status)
			}
			if got := pendings(); !slices.Equal(got, step.left) {
				t.Fatalf("pending applications of checks %v, want %v", got, step.left)
			}
		})
	}
}
