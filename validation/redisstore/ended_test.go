package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// TestEndedKeptForTheLongestKeep: when a customer's products ended is kept
// for the longest keep any release asked, never cut short by a release
// asking less (an instance with an older policy file, during a rollout),
// or a cooling-off period could be bypassed.
func TestEndedKeptForTheLongestKeep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx, day := context.Background(), 24*time.Hour
		for _, p := range []string{"credit_card", "personal_loan"} {
			imp := validation.ImportRequest{Rule: validation.Rule{Product: p}, CustomerID: "E-1", CheckID: newID(t, validation.NewImportID, "E-1"),
				Actor: "ops", GrantedAt: t0, Now: t0}
			if _, err := b.store.Import(ctx, imp); err != nil {
				t.Fatal(err)
			}
		}
		release := func(product string, keep time.Duration) {
			t.Helper()
			if _, err := b.store.Release(ctx, validation.ReleaseRequest{CustomerID: "E-1", Product: product, Actor: "ops", Now: t0, KeepEnded: keep}); err != nil {
				t.Fatal(err)
			}
		}
		release("credit_card", 365*day)
		release("personal_loan", 100*day)
		ttl, err := b.rdb.PTTL(ctx, "arb:{E-1}:ended").Result()
		if err != nil {
			t.Skipf("this backend's user runs scripts only: %v", err)
		}
		if ttl < 364*day {
			t.Fatalf("ended kept %s after a release asking 100 days; want the 365 days an earlier release asked", ttl)
		}
	})
}
