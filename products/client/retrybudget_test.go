package client_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
)

// answers serves the first answer to the first try and the second to every
// later one, and counts the tries.
type answers struct {
	tries         atomic.Int32
	first, second func(w http.ResponseWriter)
}

func (a *answers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.tries.Add(1) == 1 {
		a.first(w)
		return
	}
	a.second(w)
}

func problemAnswer(status int, reason, retryAfter string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":%d,"reason":%q}`, status, reason)
	}
}

// TestRetryBudget: the client never sleeps past what the call can use, so
// an OTP rate limit (429, Retry-After an hour) reaches the caller as such,
// rather than being retried until the hold is gone and answered
// hold_expired.
func TestRetryBudget(t *testing.T) {
	holdGone := problemAnswer(http.StatusGone, "hold_expired", "")

	t.Run("a Retry-After over MaxBackoff is returned at once", func(t *testing.T) {
		a := &answers{first: problemAnswer(http.StatusTooManyRequests, "otp_rate_limited", "3600"), second: holdGone}
		srv := httptest.NewServer(a)
		defer srv.Close()
		_, err := newClient(t, srv.URL, "k", "").Redeem(context.Background(), client.Redemption{CustomerID: "C1", Product: "credit_card", OTP: "123456"})
		var e *client.Error
		if !errors.As(err, &e) || e.Reason != client.ReasonOTPRateLimited || e.Status != http.StatusTooManyRequests {
			t.Fatalf("Redeem = %v, want 429 otp_rate_limited", err)
		}
		if got, want := e.RetryAfter, time.Hour; got != want {
			t.Fatalf("RetryAfter = %v, want %v", got, want)
		}
		if got, want := a.tries.Load(), int32(1); got != want || e.Retried {
			t.Fatalf("tries = %d (Retried %v), want %d", got, e.Retried, want)
		}
	})

	t.Run("a Retry-After past the context's deadline is returned at once", func(t *testing.T) {
		a := &answers{first: problemAnswer(http.StatusServiceUnavailable, "unavailable", "1"), second: holdGone}
		srv := httptest.NewServer(a)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := newClient(t, srv.URL, "k", "").Redeem(ctx, client.Redemption{Token: "t"})
		if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Redeem = %v, want arbiter's 503, not the deadline", err)
		}
		if got, want := a.tries.Load(), int32(1); got != want {
			t.Fatalf("tries = %d, want %d", got, want)
		}
	})

	t.Run("no retry of a token's redemption after its hold expired", func(t *testing.T) {
		a := &answers{first: problemAnswer(http.StatusServiceUnavailable, "unavailable", "1"), second: holdGone}
		srv := httptest.NewServer(a)
		defer srv.Close()
		exp := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "k", Now: func() time.Time { return exp.Add(-500 * time.Millisecond) }})
		if err != nil {
			t.Fatal(err)
		}
		token := "eyJhbGciOiJFZERTQSJ9." + base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"exp":%d}`, exp.Unix())) + ".c2ln"
		_, err = c.Redeem(context.Background(), client.Redemption{Token: token})
		if !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("Redeem = %v, want arbiter's 503", err)
		}
		if got, want := a.tries.Load(), int32(1); got != want {
			t.Fatalf("tries = %d, want %d", got, want)
		}
	})

	t.Run("a short Retry-After is still retried", func(t *testing.T) {
		a := &answers{first: problemAnswer(http.StatusTooManyRequests, "rate_limited", "0"), second: holdGone}
		srv := httptest.NewServer(a)
		defer srv.Close()
		_, err := newClient(t, srv.URL, "k", "").Redeem(context.Background(), client.Redemption{Token: "t"})
		var e *client.Error
		if !errors.As(err, &e) || e.Reason != client.ReasonHoldExpired || !e.Retried {
			t.Fatalf("Redeem = %v, want the retry's hold_expired, marked Retried", err)
		}
		if got, want := a.tries.Load(), int32(2); got != want {
			t.Fatalf("tries = %d, want %d", got, want)
		}
	})
}
