package redisstore_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/reconcile/redisrecon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// cardFeed lists its customers' credit cards in one proven page.
type cardFeed []string

func (f cardFeed) Page(_ context.Context, after string, _ int) (reconcile.HoldingsPage, error) {
	var hs []reconcile.Holding
	for _, c := range f {
		if c > after {
			hs = append(hs, reconcile.Holding{CustomerID: c, Product: "credit_card", IssuedAt: time.Now().Add(-48 * time.Hour)})
		}
	}
	proof := reconcile.ProofOf(hs)
	return reconcile.HoldingsPage{Holdings: hs, Proof: &proof}, nil
}

// TestReconcileAsLimitedUser runs reconciliations that import, open a case,
// report and then release an orphan, and an admin's resolution, as
// deploy/users.acl's arbiter user on a redis-server started from
// deploy/redis.conf: the ACL allows every command of the customers' side
// (this package) and of the runs' state (redisrecon). The findings
// themselves are redisrecon's tests' subject.
func TestReconcileAsLimitedUser(t *testing.T) {
	rdb := startProdRedis(t).client(t, "arbiter", aclArbiterPassword)
	ctx := context.Background()
	store := redisstore.New(rdb, redisstore.Options{})
	policy := validation.DefaultPolicy()
	svc := &validation.Service{Store: store, Policy: policy}
	admin := validation.Actor{ID: "ops", Roles: []validation.Role{validation.RoleAdmin}}
	old := time.Now().Add(-2 * time.Hour)
	if _, err := svc.Import(ctx, admin, "C-3", "credit_card", old); err != nil { // no feed lists it: an orphan
		t.Fatal(err)
	}
	if _, err := svc.Import(ctx, admin, "C-7", "personal_loan", old); err != nil { // C-7's card breaks the policy: a case
		t.Fatal(err)
	}
	now := time.Now()
	rec := &reconcile.Reconciler{Ledger: store, Store: redisrecon.New(rdb, store), Policy: policy,
		Config:  validation.ReconcileConfig{OnOrphan: validation.OnOrphanRelease},
		Sources: []reconcile.Source{{Product: "credit_card", Name: "card-service", Feed: cardFeed{"C-1", "C-7"}}},
		Now:     func() time.Time { return now },
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for i, want := range []map[string]string{
		{"C-1": reconcile.ActionImported, "C-3": reconcile.ActionReported, "C-7": reconcile.ActionCaseOpened},
		{"C-3": reconcile.ActionReleased, "C-7": reconcile.ActionCaseOpened}, // the orphan's second sighting
	} {
		run, err := rec.Reconcile(ctx, "test")
		if err != nil || run.Status != reconcile.RunDone {
			t.Fatalf("run %d = %+v, %v; want done", i, run, err)
		}
		_, fs, err := rec.Run(ctx, admin, run.ID, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range fs {
			got[f.CustomerID] = f.Action
		}
		if len(got) != len(want) || got["C-1"] != want["C-1"] || got["C-3"] != want["C-3"] || got["C-7"] != want["C-7"] {
			t.Errorf("run %d's findings = %v, want %v", i, got, want)
		}
		now = now.Add(16 * time.Minute) // past the grace after the first sighting
	}
	if _, err := rec.Resolve(ctx, admin, "C-7", "customer chose the loan"); err != nil {
		t.Fatal(err)
	}
	if cases, err := rec.Cases(ctx, 10); err != nil || len(cases) != 0 {
		t.Errorf("open cases after the resolution = %+v, %v", cases, err)
	}
}
