package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

// TestContractOTPReplayAfterAnotherProductsCheck: the replay of an OTP
// redemption finds its check even when a check of another product (one in
// no exclusive group) was placed since. Answered hold_expired while the
// grant is in the ledger, the product service would drop its pending row,
// leaving a grant no product row stands for.
func TestContractOTPReplayAfterAnotherProductsCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		c := hold(t, s, "F-1", "credit_card", t0)
		code, _, err := tokens.OTPCode(c.Secret, t0)
		if err != nil {
			t.Fatal(err)
		}
		g, _, err := redeemOTP(s, "F-1", "credit_card", code, "card-service", t0)
		if err != nil {
			t.Fatal(err)
		}
		savings := holdRequest(t, "F-1", "credit_card", t0)
		savings.Rule = validation.Rule{Product: "savings", HoldTTL: time.Minute, Redeemers: []string{"bank-service"}}
		if _, _, err := s.Hold(ctx, savings); err != nil {
			t.Fatalf("savings check: %v", err)
		}
		again, replayed, err := redeemOTP(s, "F-1", "credit_card", code, "card-service", t0)
		if err != nil || !replayed || again.CheckID != g.CheckID {
			t.Fatalf("OTP replay = %+v, %v, %v; want the grant of %s replayed", again, replayed, err, g.CheckID)
		}
	})
}

// TestContractIdempotentRetryOfAnAbandonedCheck: a check whose reply was
// lost and which arbiter then gave up (abandon) is not replayed as a dead
// check under its Idempotency-Key: the retry decides again and holds.
func TestContractIdempotentRetryOfAnAbandonedCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		req := holdRequest(t, "F-2", "credit_card", t0)
		req.IdempotencyKey, req.RequestHash = "k", "h"
		first, _, err := s.Hold(ctx, req) // its reply is lost
		if err != nil {
			t.Fatal(err)
		}
		if got := abandonCheck(t, s, "F-2", first.ID); got != validation.AbandonCancelled {
			t.Fatalf("abandon = %s", got)
		}
		retry := req
		retry.CheckID = mustID(t, "F-2")
		got, replayed, err := s.Hold(ctx, retry)
		if err != nil || replayed || got.ID != retry.CheckID || got.Status != validation.StatusHeld {
			t.Fatalf("retry = %+v, %v, %v; want a new hold", got, replayed, err)
		}
		// The key now names the new hold.
		retry.CheckID = mustID(t, "F-2")
		if again, replayed, err := s.Hold(ctx, retry); err != nil || !replayed || again.ID != got.ID {
			t.Fatalf("second retry = %+v, %v, %v; want %s replayed", again, replayed, err, got.ID)
		}
	})
}
