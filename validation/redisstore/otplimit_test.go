package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

func redeemOTPLimited(s *redisstore.Store, customer, code string, now time.Time) (validation.Grant, bool, error) {
	return s.Redeem(context.Background(), validation.RedeemRequest{
		Rule: rule(nil, "credit_card"), CustomerID: customer, Code: code, Actor: "card-service", Now: now,
		MaxAttempts: 5, OTPFailures: 3, OTPWindow: time.Hour,
	})
}

// TestContractOTPLimitAcrossHolds: check, guess, cancel, repeat gains
// nothing: wrong codes count per customer across holds, and past the limit
// every OTP redemption of the customer is otp_rate_limited until the window
// ends, even with the right code; the token still works.
func TestContractOTPLimitAcrossHolds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		now := t0
		for i := range 3 {
			c := hold(t, s, "L-1", "credit_card", now)
			_, _, err := redeemOTPLimited(s, "L-1", wrongCode(t, c.Secret, now), now)
			wantReason(t, err, validation.ReasonOTPInvalid)
			if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "L-1", CheckID: c.ID, Actor: "branch-portal", Now: now}); err != nil {
				t.Fatalf("cancel %d: %v", i, err)
			}
			now = now.Add(time.Minute)
		}
		c := hold(t, s, "L-1", "credit_card", now)
		code, _, err := tokens.OTPCode(c.Secret, now)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = redeemOTPLimited(s, "L-1", code, now)
		e := wantReason(t, err, validation.ReasonOTPRateLimited)
		if got, want := e.RetryAfter, time.Hour-3*time.Minute; got != want {
			t.Fatalf("RetryAfter = %v, want %v (the window opened with the first wrong code)", got, want)
		}
		events, err := s.Audit(ctx, "L-1", 50, now)
		if err != nil {
			t.Fatal(err)
		}
		limited := 0
		for _, ev := range events {
			if ev.Type == validation.EventOTPRateLimited {
				limited++
			}
		}
		if limited != 1 {
			t.Fatalf("otp_rate_limited events = %d, want 1: %+v", limited, events)
		}
		// Another customer is not affected, nor is the token.
		other := hold(t, s, "L-2", "credit_card", now)
		if code, _, _ := tokens.OTPCode(other.Secret, now); true {
			if _, _, err := redeemOTPLimited(s, "L-2", code, now); err != nil {
				t.Fatalf("another customer's OTP: %v", err)
			}
		}
		if _, _, err := redeemToken(s, c, "card-service", now); err != nil {
			t.Fatalf("token redemption while OTPs are limited: %v", err)
		}
		// Once the window has ended, OTPs work again.
		later := t0.Add(time.Hour + time.Second)
		if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "L-1", Product: "credit_card", Actor: "card-service", Now: later}); err != nil {
			t.Fatal(err)
		}
		c = hold(t, s, "L-1", "credit_card", later)
		code, _, _ = tokens.OTPCode(c.Secret, later)
		if _, _, err := redeemOTPLimited(s, "L-1", code, later); err != nil {
			t.Fatalf("OTP after the window: %v", err)
		}
	})
}
