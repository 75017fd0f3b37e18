package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// TestContractRefusalsNeverEvictStateChanges: 250 refused checks (more
// than the audit's cap) leave the record of the grant in place; refusals
// are capped on their own, and the type filter finds either kind.
func TestContractRefusalsNeverEvictStateChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := redisstore.New(b.rdb, redisstore.Options{AuditCap: 20}), context.Background()
		c := hold(t, s, "E-1", "credit_card", t0)
		if _, _, err := redeemToken(s, c, "card-service", t0); err != nil {
			t.Fatal(err)
		}
		for i := range 250 {
			_, _, err := s.Hold(ctx, holdRequest(t, "E-1", "personal_loan", t0.Add(time.Duration(i+1)*time.Second)))
			wantReason(t, err, validation.ReasonConflictingProduct)
		}
		now := t0.Add(time.Hour)
		redeemed, err := s.Audit(ctx, "E-1", 200, now, validation.EventRedeemed)
		if err != nil {
			t.Fatal(err)
		}
		if len(redeemed) != 1 || redeemed[0].CheckID != c.ID {
			t.Fatalf("redeemed events = %+v, want the grant of %s", redeemed, c.ID)
		}
		refused, err := s.Audit(ctx, "E-1", 200, now, validation.EventRefused)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(refused), 100; got != want {
			t.Fatalf("refused events kept = %d, want their own cap %d", got, want)
		}
		if !refused[0].At.Equal(t0.Add(250 * time.Second)) {
			t.Fatalf("newest refusal at %v, want the last one", refused[0].At)
		}
		// Unfiltered: newest first across both lists, state changes last.
		all, err := s.Audit(ctx, "E-1", 200, now)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(all), 102; got != want {
			t.Fatalf("events = %d, want 100 refusals + redeemed + checked", got)
		}
		if all[0].Type != validation.EventRefused || all[100].Type != validation.EventRedeemed || all[101].Type != validation.EventChecked {
			t.Fatalf("order = %s, %s, %s; want refused first, then redeemed, checked", all[0].Type, all[100].Type, all[101].Type)
		}
	})
}
