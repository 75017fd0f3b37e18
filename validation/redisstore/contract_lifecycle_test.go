package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/storetest"
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
	forEachBackend(t, func(t *testing.T, b backend) { storetest.StaleToken(t, b.shared()) })
}

func TestContractStaleCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.StaleCancel(t, b.shared()) })
}

// TestContractReplayOfAnEndedCheck: a retry of a check whose hold has ended
// replays that check, without the secret of the customer's newer hold (from
// which arbiter would compute, and send, a live OTP).
func TestContractReplayOfAnEndedCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.ReplayOfAnEndedCheck(t, b.shared()) })
}

// TestContractExpirySettledByCheck: when the first script to touch a
// customer after an expiry is a new check, that check settles the expired
// hold (TestContractExpiry has a redemption do it).
func TestContractExpirySettledByCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.ExpirySettledByCheck(t, b.shared()) })
}

// TestContractRedeemOtherProduct: a redemption must name the product of the
// hold it redeems (a token's product is in its claims); another product's
// rule never turns the hold into a grant of that product.
func TestContractRedeemOtherProduct(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.RedeemOtherProduct(t, b.shared()) })
}

// TestContractReleaseMostRecent: without a check id, release ends the most
// recent grant of the product.
func TestContractReleaseMostRecent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.ReleaseMostRecent(t, b.shared()) })
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

// TestContractHoldExpires: see storetest.HoldExpires (TestContractExpiry
// also counts the expiries the store reports).
func TestContractHoldExpires(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.HoldExpires(t, b.shared()) })
}

// TestContractBlockLifecycle: see storetest.BlockLifecycle.
func TestContractBlockLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.BlockLifecycle(t, b.shared()) })
}
