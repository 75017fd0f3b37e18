package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/abandon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

func abandonCheck(tb testing.TB, s *redisstore.Store, customer, id string) validation.AbandonOutcome {
	tb.Helper()
	out, err := s.Abandon(context.Background(), validation.AbandonRequest{CustomerID: customer, CheckID: id, Actor: "arbiter", Now: t0.Add(time.Minute)})
	if err != nil {
		tb.Fatalf("Abandon(%s): %v", id, err)
	}
	return out
}

func TestContractAbandon(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.Abandon(t, b.shared()) })
}

// TestNoGhostHolds stalls a real redis-server (SIGSTOP) while a check is
// sent: the check fails as unavailable with an unknown outcome, Redis runs
// the script when it resumes, and the abandon Queue cancels the hold nobody
// knows of, so the client's retry without an Idempotency-Key succeeds
// instead of being refused hold_exists by its own ghost; autopipelined too.
func TestNoGhostHolds(t *testing.T) {
	for _, opts := range []redisstore.Options{{}, {AutoPipeline: true}} {
		t.Run(map[bool]string{false: "alone", true: "autopipelined"}[opts.AutoPipeline], func(t *testing.T) {
			testNoGhostHolds(t, opts)
		})
	}
}

func testNoGhostHolds(t *testing.T, opts redisstore.Options) {
	srv := redistest.MustStartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	store := redisstore.New(rdb, opts)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	settled := make(chan validation.AbandonOutcome, 1)
	ab := &abandon.Queue{Store: store, Retry: 20 * time.Millisecond, OnOutcome: func(o validation.AbandonOutcome) { settled <- o }}
	svc := &validation.Service{Store: store, Policy: validation.DefaultPolicy(), Abandoner: ab}
	branch := validation.Actor{ID: "branch-portal", Roles: []validation.Role{validation.RoleChecker}}
	in := validation.CheckInput{CustomerID: "G-1", Product: "credit_card"}

	srv.Pause(t)
	_, _, err := svc.Check(ctx, branch, in)
	if !errors.Is(err, validation.ErrUnavailable) || !errors.Is(err, validation.ErrOutcomeUnknown) {
		t.Fatalf("check against a stalled Redis = %v, want unavailable with an unknown outcome", err)
	}
	if got := ab.Pending(); got != 1 {
		t.Fatalf("abandoner pending = %d, want the check", got)
	}
	srv.Resume(t)
	go ab.Run(ctx)
	select {
	case out := <-settled:
		// Redis usually runs the stalled script first (cancelled), but if
		// the abandon reached it first the late script finds a tombstone.
		if out != validation.AbandonCancelled && out != validation.AbandonTombstone {
			t.Fatalf("abandon = %s, want the ghost hold cancelled or forestalled", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the check of unknown outcome was not settled within 10s of Redis resuming")
	}
	if _, _, err := svc.Check(ctx, branch, in); err != nil {
		t.Fatalf("the client's retry = %v, want a hold", err)
	}
}
