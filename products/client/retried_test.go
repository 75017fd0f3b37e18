package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
)

// TestRefusalOfARetryIsMarked: a refusal that answers a retry (after a 503
// whose request may have run) says so, so that a product service does not
// take it as proof that nothing was granted.
func TestRefusalOfARetryIsMarked(t *testing.T) {
	for _, first := range []int{http.StatusServiceUnavailable, http.StatusGone} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			if calls.Add(1) == 1 && first == http.StatusServiceUnavailable {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"status":503,"reason":"unavailable"}`))
				return
			}
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"status":410,"reason":"hold_expired"}`))
		}))
		c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "k", ClientID: "card-service", RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Redeem(context.Background(), client.Redemption{CustomerID: "C-1", Product: "credit_card", OTP: "123456"})
		var e *client.Error
		if !errors.As(err, &e) || e.Reason != client.ReasonHoldExpired {
			t.Fatalf("first %d: err = %v, want hold_expired", first, err)
		}
		if got, want := e.Retried, first == http.StatusServiceUnavailable; got != want {
			t.Fatalf("first %d: Retried = %v, want %v", first, got, want)
		}
		srv.Close()
	}
}
