package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// Contract tests of what happens around a check's end: the id, token and
// idempotency key of a check that ended must never reach the customer's
// newer hold; an expiry is settled by whichever script comes next; a
// redemption names its hold's product; release picks the right grant; the
// audit keeps its cap.

// cancel ends a live hold, failing tb otherwise.
func cancel(tb testing.TB, s *redisstore.Store, c validation.Check, now time.Time) {
	tb.Helper()
	if _, err := s.Cancel(context.Background(), validation.CancelRequest{CustomerID: c.CustomerID, CheckID: c.ID, Actor: "branch-portal", Now: now}); err != nil {
		tb.Fatalf("Cancel(%s): %v", c.ID, err)
	}
}

// wantHold fails tb unless the customer's live hold is check id.
func wantHold(tb testing.TB, s *redisstore.Store, customer, id string, now time.Time) {
	tb.Helper()
	cust, err := s.Customer(context.Background(), customer, now)
	if err != nil {
		tb.Fatal(err)
	}
	if cust.Hold == nil {
		tb.Fatalf("customer %s has no live hold, want %s (grants %+v)", customer, id, cust.Grants)
	}
	if got, want := cust.Hold.ID, id; got != want {
		tb.Fatalf("live hold = %s, want %s", got, want)
	}
}

func TestContractStaleToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := b.store
		first := hold(t, s, "C-1", "credit_card", t0)
		cancel(t, s, first, t0.Add(time.Second))
		second := hold(t, s, "C-1", "credit_card", t0.Add(2*time.Second))

		t.Run("the cancelled check's token is refused", func(t *testing.T) {
			_, _, err := redeemToken(s, first, "card-service", t0.Add(3*time.Second))
			wantReason(t, err, validation.ReasonHoldExpired)
		})
		t.Run("the newer hold of the same product is untouched", func(t *testing.T) {
			wantHold(t, s, "C-1", second.ID, t0.Add(3*time.Second))
		})
		t.Run("the newer hold's own token redeems it", func(t *testing.T) {
			g, _, err := redeemToken(s, second, "card-service", t0.Add(4*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := g.CheckID, second.ID; got != want {
				t.Fatalf("grant of check %s, want %s", got, want)
			}
		})
	})
}

func TestContractStaleCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		first := hold(t, s, "C-1", "credit_card", t0)
		cancel(t, s, first, t0.Add(time.Second))
		second := hold(t, s, "C-1", "credit_card", t0.Add(2*time.Second))

		_, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: first.ID, Actor: "branch-portal", Now: t0.Add(3 * time.Second)})
		wantReason(t, err, validation.ReasonCheckNotHeld)
		wantHold(t, s, "C-1", second.ID, t0.Add(3*time.Second))
	})
}

// TestContractReplayOfAnEndedCheck: a retry of a check whose hold has ended
// replays that check, without the secret of the customer's newer hold (from
// which arbiter would compute, and send, a live OTP).
func TestContractReplayOfAnEndedCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		req := holdRequest(t, "C-1", "credit_card", t0)
		req.IdempotencyKey, req.RequestHash = "k1", "body-1"
		first, _, err := s.Hold(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		cancel(t, s, first, t0.Add(time.Second))
		next := holdRequest(t, "C-1", "credit_card", t0.Add(2*time.Second))
		next.Secret = []byte("another-hold-secret!")
		second, _, err := s.Hold(ctx, next)
		if err != nil {
			t.Fatal(err)
		}

		retry := req
		retry.CheckID, retry.Now = mustID(t, "C-1"), t0.Add(3*time.Second)
		got, replayed, err := s.Hold(ctx, retry)
		if err != nil || !replayed {
			t.Fatalf("retry = %v, replayed %v; want the first check replayed", err, replayed)
		}
		if got.ID != first.ID || got.Status != validation.StatusCancelled {
			t.Fatalf("replay = %s %s, want %s cancelled", got.ID, got.Status, first.ID)
		}
		if got.Secret != nil {
			t.Fatalf("replay of an ended check carries secret %q, want none", got.Secret)
		}
		wantHold(t, s, "C-1", second.ID, t0.Add(3*time.Second))
	})
}

// TestContractExpirySettledByCheck: when the first script to touch a
// customer after an expiry is a new check, that check settles the expired
// hold (TestContractExpiry has a redemption do it).
func TestContractExpirySettledByCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		req := holdRequest(t, "C-1", "credit_card", time.Now())
		req.Rule.HoldTTL = time.Second
		first, _, err := s.Hold(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		b.expire(t, "C-1")
		// miniredis's clock was fast-forwarded past the expiry; arbiter's
		// clock is never behind the expiry it observes.
		now := time.Now()
		if now.Before(first.ExpiresAt) {
			now = first.ExpiresAt.Add(time.Millisecond)
		}
		second := hold(t, s, "C-1", "credit_card", now)
		if second.Fence <= first.Fence {
			t.Fatalf("fence after expiry = %d, want more than %d", second.Fence, first.Fence)
		}

		t.Run("the expired check reads expired, at its expiry", func(t *testing.T) {
			got, err := s.Check(ctx, "C-1", first.ID, now)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := got.Status, validation.StatusExpired; got != want {
				t.Fatalf("status = %s, want %s", got, want)
			}
			if !got.EndedAt.Equal(first.ExpiresAt) {
				t.Fatalf("ended at %v, want the expiry %v", got.EndedAt, first.ExpiresAt)
			}
		})
		t.Run("the audit has its expired event before the new check", func(t *testing.T) {
			events, err := s.Audit(ctx, "C-1", 10, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []validation.EventType
			for _, e := range events {
				got = append(got, e.Type)
			}
			want := []validation.EventType{validation.EventChecked, validation.EventExpired, validation.EventChecked}
			if !slices.Equal(got, want) {
				t.Fatalf("audit = %v, want %v", got, want)
			}
			if e := events[1]; e.CheckID != first.ID || !e.At.Equal(first.ExpiresAt) {
				t.Fatalf("expired event = %+v, want check %s at %v", e, first.ID, first.ExpiresAt)
			}
		})
	})
}

// TestContractRedeemOtherProduct: a redemption must name the product of the
// hold it redeems (a token's product is in its claims); another product's
// rule never turns the hold into a grant of that product.
func TestContractRedeemOtherProduct(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		c := hold(t, s, "C-1", "credit_card", t0)
		_, _, err := s.Redeem(ctx, validation.RedeemRequest{
			Rule: rule(t, "personal_loan"), CustomerID: "C-1", CheckID: c.ID, Actor: "loan-service", Now: t0.Add(time.Second), MaxAttempts: 5,
		})
		wantReason(t, err, validation.ReasonTokenInvalid)
		wantHold(t, s, "C-1", c.ID, t0.Add(time.Second))
	})
}

// TestContractReleaseMostRecent: without a check id, release ends the most
// recent grant of the product.
func TestContractReleaseMostRecent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		var ids []string
		for i := range 2 {
			req := holdRequest(t, "C-1", "credit_card", t0.Add(time.Duration(i)*time.Minute))
			req.Rule.Max = 2
			c, _, err := s.Hold(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Redeem(ctx, validation.RedeemRequest{Rule: req.Rule, CustomerID: "C-1", CheckID: c.ID, Actor: "card-service", Now: req.Now, MaxAttempts: 5}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
		g, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "C-1", Product: "credit_card", Actor: "card-service", Now: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := g.CheckID, ids[1]; got != want {
			t.Fatalf("released the grant of %s, want the most recent, %s", got, want)
		}
		cust, err := s.Customer(ctx, "C-1", t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(cust.Grants) != 1 || cust.Grants[0].CheckID != ids[0] {
			t.Fatalf("remaining grants = %+v, want the one of %s", cust.Grants, ids[0])
		}
	})
}

// TestContractAuditCap: a customer's audit keeps the newest AuditCap events.
func TestContractAuditCap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := redisstore.New(b.rdb, redisstore.Options{AuditCap: 3}), context.Background()
		var last validation.Check
		for i := range 3 { // checked, cancelled, checked, cancelled, checked
			now := t0.Add(time.Duration(i) * time.Minute)
			last = hold(t, s, "C-1", "credit_card", now)
			if i < 2 {
				cancel(t, s, last, now)
			}
		}
		events, err := s.Audit(ctx, "C-1", 10, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(events), 3; got != want {
			t.Fatalf("audit has %d events, want the cap, %d: %+v", got, want, events)
		}
		if got, want := events[0].CheckID, last.ID; got != want || events[0].Type != validation.EventChecked {
			t.Fatalf("newest event = %+v, want the check of %s", events[0], want)
		}
		// The cap bounds what is stored, not only what is listed.
		if stored, err := b.rdb.LRange(ctx, "arb:{C-1}:audit", 0, -1).Result(); err != nil || len(stored) > 3 {
			t.Fatalf("audit list holds %d events (%v), want at most the cap, 3", len(stored), err)
		}
	})
}
