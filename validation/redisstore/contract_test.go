package redisstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// backend is one Store implementation under the contract suite, with a way
// to make a hold's TTL run out: real Redis waits for its own clock (the TTL
// is the subject), miniredis is fast-forwarded.
type backend struct {
	store  *redisstore.Store
	rdb    redis.UniversalClient
	expire func(tb testing.TB, customer string)
}

// backends are the Store implementations every contract test runs against:
// redis (and cluster) with compact grants, miniredis with whole ones, the
// default, so that the contract holds in both modes.
var backends = map[string]func(tb testing.TB) backend{
	"redis": func(tb testing.TB) backend {
		srv := redistest.MustStartRedis(tb)
		rdb := srv.Client(tb)
		return backend{store: redisstore.New(rdb, redisstore.Options{CompactGrants: true}), rdb: rdb, expire: waitHoldGone(rdb)}
	},
	"miniredis": func(tb testing.TB) backend {
		mr := redistest.MustStartMiniredis(tb)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		tb.Cleanup(func() { rdb.Close() })
		return backend{store: redisstore.New(rdb, redisstore.Options{}), rdb: rdb, expire: fastForward(mr)}
	},
}

func waitHoldGone(rdb redis.UniversalClient) func(testing.TB, string) {
	return func(tb testing.TB, customer string) {
		tb.Helper()
		key := "arb:{" + customer + "}:hold"
		deadline := time.Now().Add(10 * time.Second)
		for rdb.Exists(context.Background(), key).Val() == 1 {
			if time.Now().After(deadline) {
				tb.Fatalf("hold %s did not expire within 10s", key)
			}
			time.Sleep(20 * time.Millisecond) // polling Redis's own clock, the subject of the test
		}
	}
}

func fastForward(mr *miniredis.Miniredis) func(testing.TB, string) {
	return func(tb testing.TB, customer string) {
		tb.Helper()
		mr.FastForward(time.Hour)
		if mr.Exists("arb:{" + customer + "}:hold") {
			tb.Fatalf("hold of %s survived a fast-forward of an hour", customer)
		}
	}
}

// shared is the backend as the store-agnostic contract suite
// (validation/storetest) takes it.
func (b backend) shared() storetest.Backend {
	return storetest.Backend{Store: b.store, Expire: b.expire}
}

// forEachBackend runs the test against every backend as named subtests.
// The Redis-specific tests call the shared suite's helpers by these names.
var (
	rule          = storetest.DefaultRule
	hold          = storetest.NewHold
	holdRequest   = storetest.NewHoldRequest
	redeemToken   = storetest.TokenRedemption
	redeemOTP     = storetest.OTPRedemption
	wantReason    = storetest.WantReason
	mustID        = storetest.NewCheckID
	wrongCode     = storetest.WrongCode
	deliveredHold = storetest.DeliveredHold
)

func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for name, newBackend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newBackend(t))
		})
	}
}

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

var policy = validation.DefaultPolicy()

func TestContractCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.Check(t, b.shared()) })
}

func TestContractFamilyLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.FamilyLimit(t, b.shared()) })
}

func TestContractCoolingOff(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.CoolingOff(t, b.shared()) })
}

func TestContractPolicyVersion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.PolicyVersion(t, b.shared()) })
}

func TestContractRedeemToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.RedeemToken(t, b.shared()) })
}

func TestContractRefusalListsEveryFailedRule(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.RefusalListsEveryFailedRule(t, b.shared()) })
}

func TestContractRedeemOTP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.RedeemOTP(t, b.shared()) })
}

func TestContractOTPLockout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.OTPLockout(t, b.shared()) })
}

func TestContractExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		var expiries atomic.Int32
		s := redisstore.New(b.rdb, redisstore.Options{OnExpiry: func() { expiries.Add(1) }})
		ctx := context.Background()
		req := holdRequest(t, "C-1", "credit_card", time.Now())
		req.Rule.HoldTTL = time.Second
		c, _, err := s.Hold(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		b.expire(t, "C-1")
		now := time.Now()

		if got := expiries.Load(); got != 0 {
			t.Fatalf("expiries = %d before any script ran, want 0", got)
		}
		_, _, err = redeemToken(s, c, "card-service", now)
		wantReason(t, err, validation.ReasonHoldExpired)
		if got := expiries.Load(); got != 1 {
			t.Fatalf("expiries = %d after the script that settled it, want 1", got)
		}

		got, err := s.Check(ctx, "C-1", c.ID, now)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != validation.StatusExpired || !got.EndedAt.Equal(c.ExpiresAt) {
			t.Fatalf("check = %+v, want expired at %v", got, c.ExpiresAt)
		}
		events, err := s.Audit(ctx, "C-1", 10, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 2 || events[0].Type != validation.EventExpired || events[0].CheckID != c.ID || !events[0].At.Equal(c.ExpiresAt) {
			t.Fatalf("audit = %+v, want expired then checked", events)
		}
		next := hold(t, s, "C-1", "personal_loan", now)
		if next.Fence <= c.Fence {
			t.Fatalf("fence after expiry = %d, want more than %d", next.Fence, c.Fence)
		}
		if got := expiries.Load(); got != 1 {
			t.Fatalf("expiries = %d, want the one expiry counted once", got)
		}
	})
}

func TestContractCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.Cancel(t, b.shared()) })
}

func TestContractReleaseAndImport(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.ReleaseAndImport(t, b.shared()) })
}

func TestContractRedeemReappliesThePolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.RedeemReappliesThePolicy(t, b.shared()) })
}

func TestContractMax(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.Max(t, b.shared()) })
}

func TestContractIdempotency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.Idempotency(t, b.shared()) })
}

func TestContractAuditAndFence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.AuditAndFence(t, b.shared()) })
}

func TestContractPrunesOldChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := redisstore.New(b.rdb, redisstore.Options{Retention: time.Hour})
		ctx := context.Background()
		old := hold(t, s, "C-1", "credit_card", t0)
		if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: old.ID, Actor: "x", Now: t0}); err != nil {
			t.Fatal(err)
		}
		// Within the retention the ended check stays readable...
		recent := hold(t, s, "C-1", "credit_card", t0.Add(30*time.Minute))
		if _, err := s.Check(ctx, "C-1", old.ID, t0.Add(30*time.Minute)); err != nil {
			t.Fatalf("check within retention: %v", err)
		}
		if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: recent.ID, Actor: "x", Now: t0.Add(30 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		// ...and a check placed past it prunes it, keeping the recent one.
		hold(t, s, "C-1", "credit_card", t0.Add(80*time.Minute))
		_, err := s.Check(ctx, "C-1", old.ID, t0.Add(80*time.Minute))
		wantReason(t, err, validation.ReasonCheckNotFound)
		if _, err := s.Check(ctx, "C-1", recent.ID, t0.Add(80*time.Minute)); err != nil {
			t.Fatalf("recent check pruned: %v", err)
		}
	})
}

func TestContractReleaseByCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.ReleaseByCheck(t, b.shared()) })
}

// TestContractFenceNeverDecreases: a fence is one more than the last, or
// the clock when that is greater, so two holds in one millisecond and an
// arbiter whose clock runs behind still get increasing fences.
func TestContractFenceNeverDecreases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.FenceNeverDecreases(t, b.shared()) })
}
