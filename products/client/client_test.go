package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/tokens"
)

func newClient(tb testing.TB, base, key, id string) *client.Client {
	tb.Helper()
	c, err := client.New(client.Config{BaseURL: base, APIKey: key, ClientID: id, RetryBackoff: time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestRefusalDetails(t *testing.T) {
	ctx := context.Background()
	portal := newClient(t, arbiterURL(), checkerKey, "")
	cards := newClient(t, arbiterURL(), cardKey, "card-service")
	loans := newClient(t, arbiterURL(), loanKey, "loan-service")

	t.Run("hold_exists carries the hold and Retry-After", func(t *testing.T) {
		customer := newCustomer("T-hold")
		ch, err := portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = loans.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "personal_loan"})
		var e *client.Error
		if !errors.As(err, &e) || !errors.Is(err, client.ErrHoldExists) {
			t.Fatalf("Check = %v, want ErrHoldExists", err)
		}
		if got, want := e.Status, http.StatusConflict; got != want {
			t.Errorf("Status = %d, want %d", got, want)
		}
		if got, want := e.HeldProduct, "credit_card"; got != want {
			t.Errorf("HeldProduct = %q, want %q", got, want)
		}
		if got, want := e.HeldBy, "branch-portal"; got != want {
			t.Errorf("HeldBy = %q, want %q", got, want)
		}
		if !e.HeldUntil.Equal(ch.ExpiresAt) {
			t.Errorf("HeldUntil = %v, want %v", e.HeldUntil, ch.ExpiresAt)
		}
		if e.RetryAfter <= 0 || e.RetryAfter > 5*time.Minute+time.Second {
			t.Errorf("RetryAfter = %v, want within the hold's 5m", e.RetryAfter)
		}
		if len(e.Violations) == 0 || e.Detail == "" {
			t.Errorf("Violations = %v, Detail = %q: want both set", e.Violations, e.Detail)
		}
	})

	t.Run("otp_invalid carries attempts left", func(t *testing.T) {
		customer := newCustomer("T-otp")
		ch, err := portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
		if err != nil {
			t.Fatal(err)
		}
		wrong := "000000"
		if ch.OTP == wrong {
			wrong = "111111"
		}
		_, err = cards.Redeem(ctx, client.Redemption{CustomerID: customer, Product: "credit_card", OTP: wrong})
		var e *client.Error
		if !errors.As(err, &e) || !errors.Is(err, client.ErrOTPInvalid) {
			t.Fatalf("Redeem = %v, want ErrOTPInvalid", err)
		}
		if got, want := e.AttemptsLeft, 4; got != want {
			t.Errorf("AttemptsLeft = %d, want %d", got, want)
		}
	})

	t.Run("a repeated check with the same key replays", func(t *testing.T) {
		customer := newCustomer("T-idem")
		r := client.CheckRequest{CustomerID: customer, Product: "credit_card", IdempotencyKey: "k-" + customer}
		first, err := portal.Check(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		second, err := portal.Check(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := second.ID, first.ID; got != want || !second.Replayed || first.Replayed {
			t.Fatalf("second check = %s replayed %v, want %s replayed (first replayed %v)", got, second.Replayed, want, first.Replayed)
		}
	})

	t.Run("customer, audit and cancel", func(t *testing.T) {
		customer := newCustomer("T-cust")
		ch, err := portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "personal_loan"})
		if err != nil {
			t.Fatal(err)
		}
		cu, err := loans.Customer(ctx, customer)
		if err != nil {
			t.Fatal(err)
		}
		if cu.Hold == nil || cu.Hold.CheckID != ch.ID {
			t.Fatalf("Customer().Hold = %+v, want check %s", cu.Hold, ch.ID)
		}
		if err := portal.Cancel(ctx, ch.ID); err != nil {
			t.Fatal(err)
		}
		if err := portal.Cancel(ctx, ch.ID); !errors.Is(err, client.ErrCheckNotHeld) {
			t.Fatalf("second Cancel = %v, want ErrCheckNotHeld", err)
		}
		got, err := portal.GetCheck(ctx, ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != client.StatusCancelled {
			t.Fatalf("status = %s, want cancelled", got.Status)
		}
		events, err := portal.Audit(ctx, customer, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) < 2 || events[0].Type != "cancelled" {
			t.Fatalf("audit = %+v, want cancelled newest", events)
		}
		if _, err := portal.GetCheck(ctx, "chk_nope"); !errors.Is(err, client.ErrCheckNotFound) {
			t.Fatalf("GetCheck(unknown) = %v, want ErrCheckNotFound", err)
		}
		if err := cards.Release(ctx, customer, "credit_card", ""); !errors.Is(err, client.ErrGrantNotFound) {
			t.Fatalf("Release(nothing held) = %v, want ErrGrantNotFound", err)
		}
	})
}

// flaky answers 503 to the first n requests, then delegates to h, and
// records every request's Idempotency-Key.
type flaky struct {
	mu   sync.Mutex
	n    int
	keys []string
	h    http.HandlerFunc
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	fail := len(f.keys) <= f.n
	f.mu.Unlock()
	if fail {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":503,"reason":"unavailable","title":"Temporarily unavailable"}`))
		return
	}
	f.h(w, r)
}

func (f *flaky) tries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	created := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"check_id":"chk_x_C1","status":"held","fence":3}`))
	}

	t.Run("check retries 503 with one idempotency key", func(t *testing.T) {
		f := &flaky{n: 2, h: created}
		srv := httptest.NewServer(f)
		defer srv.Close()
		ch, err := newClient(t, srv.URL, "k", "").Check(ctx, client.CheckRequest{CustomerID: "C1", Product: "credit_card"})
		if err != nil {
			t.Fatal(err)
		}
		keys := f.tries()
		if got, want := len(keys), 3; got != want {
			t.Fatalf("tries = %d, want %d", got, want)
		}
		if keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
			t.Fatalf("Idempotency-Keys = %q, want one non-empty key on every try", keys)
		}
		if got, want := ch.Fence, int64(3); got != want {
			t.Fatalf("Fence = %d, want %d", got, want)
		}
	})

	t.Run("gives up after MaxAttempts with the last error", func(t *testing.T) {
		f := &flaky{n: 100, h: created}
		srv := httptest.NewServer(f)
		defer srv.Close()
		_, err := newClient(t, srv.URL, "k", "").Redeem(ctx, client.Redemption{Token: "t"})
		if !errors.Is(err, client.ErrUnavailable) || !client.IsTemporary(err) {
			t.Fatalf("Redeem = %v, want ErrUnavailable", err)
		}
		if got, want := len(f.tries()), client.DefaultMaxAttempts; got != want {
			t.Fatalf("tries = %d, want %d", got, want)
		}
	})

	t.Run("refusals are not retried", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"status":410,"reason":"hold_expired","detail":"no live hold"}`))
		}))
		defer srv.Close()
		_, err := newClient(t, srv.URL, "k", "").Redeem(ctx, client.Redemption{Token: "t"})
		if !errors.Is(err, client.ErrHoldExpired) {
			t.Fatalf("Redeem = %v, want ErrHoldExpired", err)
		}
		if got, want := n.Load(), int32(1); got != want {
			t.Fatalf("tries = %d, want %d", got, want)
		}
	})

	t.Run("release is not repeated after a lost answer", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // the request arrived; the answer is lost
			}
		}))
		defer srv.Close()
		err := newClient(t, srv.URL, "k", "").Release(ctx, "C1", "credit_card", "")
		if err == nil || !client.IsTemporary(err) {
			t.Fatalf("Release = %v, want a temporary network error", err)
		}
		if got, want := n.Load(), int32(1); got != want {
			t.Fatalf("tries = %d, want %d", got, want)
		}
	})

	t.Run("redeem is repeated after a lost answer", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			}
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"check_id":"chk_x_C1","product":"credit_card","fence":2}`))
		}))
		defer srv.Close()
		g, err := newClient(t, srv.URL, "k", "").Redeem(ctx, client.Redemption{Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if !g.Replayed || n.Load() != 2 {
			t.Fatalf("Replayed = %v after %d tries, want true after 2", g.Replayed, n.Load())
		}
	})

	t.Run("release is retried when the connection was refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		start := time.Now()
		err = newClient(t, "http://"+addr, "k", "").Release(ctx, "C1", "credit_card", "")
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Fatalf("Release = %v, want a dial error", err)
		}
		if !strings.Contains(err.Error(), "release") || time.Since(start) > 5*time.Second {
			t.Fatalf("Release = %v after %v", err, time.Since(start))
		}
	})
}

// jwksServer serves the JWKS of whichever issuer is current, and counts
// fetches.
type jwksServer struct {
	mu      sync.Mutex
	issuer  *tokens.Issuer
	fetches int
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.fetches++
	_, _ = w.Write(j.issuer.JWKS())
}

func (j *jwksServer) set(i *tokens.Issuer) { j.mu.Lock(); j.issuer = i; j.mu.Unlock() }
func (j *jwksServer) count() int           { j.mu.Lock(); defer j.mu.Unlock(); return j.fetches }

func newIssuer(tb testing.TB) *tokens.Issuer {
	tb.Helper()
	k, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	i, err := tokens.NewIssuer(tokens.IssuerConfig{Key: k})
	if err != nil {
		tb.Fatal(err)
	}
	return i
}

func sign(tb testing.TB, i *tokens.Issuer, aud string, iat time.Time) string {
	tb.Helper()
	tok, err := i.Sign(tokens.Claims{CheckID: "chk_a_C1", CustomerID: "C1", Product: "credit_card", Fence: 7,
		Audience: []string{aud}, IssuedAt: iat, ExpiresAt: iat.Add(5 * time.Minute)})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestVerifyToken(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := now
	old, rotated := newIssuer(t), newIssuer(t)
	js := &jwksServer{issuer: old}
	srv := httptest.NewServer(js)
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "k", ClientID: "card-service",
		KeyRefreshInterval: time.Minute, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}

	claims, err := c.VerifyToken(ctx, sign(t, old, "card-service", now))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := claims.Fence, int64(7); got != want || claims.CustomerID != "C1" {
		t.Fatalf("claims = %+v, want fence %d for C1", claims, want)
	}

	refusals := map[string]string{
		"wrong audience": sign(t, old, "loan-service", now),
		"tampered":       sign(t, old, "card-service", now)[:40] + "x" + sign(t, old, "card-service", now)[41:],
		"not a JWT":      "hello",
	}
	for name, tok := range refusals {
		if _, err := c.VerifyToken(ctx, tok); !errors.Is(err, client.ErrTokenInvalid) {
			t.Errorf("%s: VerifyToken = %v, want ErrTokenInvalid", name, err)
		}
	}
	// Key rotation: a token by the new key refreshes the cache once.
	clock = now.Add(2 * time.Minute)
	js.set(rotated)
	before := js.count()
	if _, err := c.VerifyToken(ctx, sign(t, rotated, "card-service", now)); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if got, want := js.count(), before+1; got != want {
		t.Fatalf("JWKS fetches = %d, want %d", got, want)
	}
	// Unknown kids do not refetch within KeyRefreshInterval.
	forger := newIssuer(t)
	for range 3 {
		if _, err := c.VerifyToken(ctx, sign(t, forger, "card-service", now)); !errors.Is(err, client.ErrTokenInvalid) {
			t.Fatalf("forged: VerifyToken = %v, want ErrTokenInvalid", err)
		}
	}
	if got, want := js.count(), before+1; got != want {
		t.Fatalf("JWKS fetches after forged kids = %d, want %d", got, want)
	}

	clock = now.Add(6 * time.Minute)
	if _, err := c.VerifyToken(ctx, sign(t, rotated, "card-service", now)); !errors.Is(err, client.ErrTokenInvalid) {
		t.Errorf("expired: VerifyToken = %v, want ErrTokenInvalid", err)
	}
}
