package redisrecon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/reconcile/redisrecon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestReconcileFindingsBoundedInTotal: runs that each store as many
// findings as a run may (a feed that stays broken, every interval) keep at
// most MaxStoredFindingsTotal of earlier runs' findings, the oldest runs'
// dropped first (their counts stay, their run says findings 0), so
// reconciliation never fills Redis within the 7 days runs are kept.
func TestReconcileFindingsBoundedInTotal(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	store := redisrecon.New(rdb, redisstore.New(rdb, redisstore.Options{}))
	ctx := context.Background()
	per := reconcile.MaxStoredFindings
	fs := make([]reconcile.Finding, per)
	for i := range fs {
		fs[i] = reconcile.Finding{Kind: reconcile.FindingOrphanGrant, CustomerID: fmt.Sprintf("C-%05d", i), Products: []string{"credit_card"},
			Detail: strings.Repeat("a grant no feed lists ", 10), Action: reconcile.ActionReported}
	}
	runs := redisrecon.MaxStoredFindingsTotal/per + 3
	start := time.Now().Add(-24 * time.Hour)
	var ids []string
	for i := range runs {
		run := reconcile.Run{ID: fmt.Sprintf("rec_%016x", i), Status: reconcile.RunRunning, StartedAt: start.Add(time.Duration(i) * 10 * time.Minute),
			Counts: map[reconcile.FindingKind]int{}, Sources: []reconcile.SourceProgress{{Product: "credit_card", Name: "card-service"}}}
		if err := store.SaveRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		if err := store.AddFindings(ctx, run.ID, fs); err != nil {
			t.Fatal(err)
		}
		run.Status, run.Findings, run.Counts[reconcile.FindingOrphanGrant] = reconcile.RunDone, per, per
		if err := store.SaveRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.ID)
	}
	total := 0
	for i, id := range ids {
		got, err := store.Findings(ctx, id, 0, per)
		if err != nil {
			t.Fatal(err)
		}
		run, err := store.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		total += len(got)
		kept := i >= runs-1-redisrecon.MaxStoredFindingsTotal/per // the newest runs' findings, within the bound, and the last run's
		if want := map[bool]int{true: per, false: 0}[kept]; len(got) != want || run.Findings != want || run.Counts[reconcile.FindingOrphanGrant] != per {
			t.Errorf("run %d of %d: %d findings stored, run says %d (counts %v); want %d, counts kept", i+1, runs, len(got), run.Findings, run.Counts, want)
		}
	}
	if max := redisrecon.MaxStoredFindingsTotal + per; total > max {
		t.Errorf("%d findings stored across %d runs, want at most %d", total, runs, max)
	}

	t.Run("a run that died leaves no seen set once the next one starts", func(t *testing.T) {
		dead := ids[len(ids)-1] // never dropped its seen set
		if err := store.MarkSeen(ctx, dead, "credit_card", []string{"C-1"}); err != nil {
			t.Fatal(err)
		}
		next := reconcile.Run{ID: "rec_ffffffffffffffff", Status: reconcile.RunRunning, StartedAt: time.Now(),
			Sources: []reconcile.SourceProgress{{Product: "credit_card"}}}
		if err := store.SaveRun(ctx, next); err != nil {
			t.Fatal(err)
		}
		if seen, err := store.Seen(ctx, dead, "credit_card", []string{"C-1"}); err != nil || seen[0] {
			t.Errorf("the dead run's seen set: %v, %v; want it deleted", seen, err)
		}
	})
}
