package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/httpapi"
	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

// limited is an Arbiter that answers every redemption with an OTP rate
// limit, as arbiter does after ten wrong codes for a customer.
type limited struct{ issuing.Arbiter }

func (limited) Redeem(context.Context, client.Redemption) (*client.Grant, error) {
	return nil, &client.Error{Op: "redeem", Status: http.StatusTooManyRequests, Reason: client.ReasonOTPRateLimited,
		Detail: "too many wrong codes for this customer", RetryAfter: time.Hour}
}

// TestRateLimitPassesThrough: arbiter's 429 reaches the applicant as 429,
// with its reason and Retry-After, not as another refusal or a 5xx, and
// the application leaves no pending row (arbiter redeemed nothing).
func TestRateLimitPassesThrough(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "card.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := &issuing.Service{Product: "credit_card", ClientID: "card-service", Arbiter: limited{}, Store: st}
	h := httpapi.New(httpapi.Config{Service: svc, Ready: func(context.Context) error { return nil },
		Authenticate: func(*http.Request) (string, error) { return "branch-portal", nil }})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/applications", strings.NewReader(`{"customer_id":"C-1","otp":"123456"}`))
	h.ServeHTTP(rec, req)
	if got, want := rec.Code, http.StatusTooManyRequests; got != want {
		t.Fatalf("status = %d, want %d; body %s", got, want, rec.Body)
	}
	if got, want := rec.Header().Get("Retry-After"), "3600"; got != want {
		t.Fatalf("Retry-After = %q, want %q", got, want)
	}
	var p struct {
		Reason  string `json:"reason"`
		Arbiter struct {
			Reason string `json:"reason"`
		} `json:"arbiter"`
	}
	if err := json.NewDecoder(rec.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.Reason != "otp_rate_limited" || p.Arbiter.Reason != "otp_rate_limited" {
		t.Fatalf("reason = %q (arbiter %q), want otp_rate_limited", p.Reason, p.Arbiter.Reason)
	}
	if ps, err := st.Pendings(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("pending rows = %v %v, want none", ps, err)
	}
}

// TestUnauthenticatedCallerIsRefused: with Authenticate set, an application
// it refuses is 401 unauthorized before the body is read or arbiter asked.
func TestUnauthenticatedCallerIsRefused(t *testing.T) {
	h := httpapi.New(httpapi.Config{Service: &issuing.Service{Product: "credit_card"}, Ready: func(context.Context) error { return nil },
		Authenticate: func(*http.Request) (string, error) { return "", errors.New("unknown API key") }})
	for _, route := range []struct{ method, path string }{
		{"POST", "/v1/applications"}, {"POST", "/v1/applications/online"}, {"DELETE", "/v1/products/C-1"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(route.method, route.path, strings.NewReader(`{"customer_id":"C-1","otp":"1"}`)))
		var p struct {
			Reason, Detail string
		}
		_ = json.NewDecoder(rec.Body).Decode(&p)
		if rec.Code != http.StatusUnauthorized || p.Reason != "unauthorized" || p.Detail != "unknown API key" ||
			rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s = %d %q %q (%s), want 401 unauthorized problem+json", route.method, route.path, rec.Code, p.Reason, p.Detail, rec.Header().Get("Content-Type"))
		}
	}
}
