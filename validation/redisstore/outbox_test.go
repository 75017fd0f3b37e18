package redisstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// testOutboxCap is the outbox bound of the backends that run the contract
// suite with the outbox on: far above what a test writes.
const testOutboxCap = 1 << 20

// outboxBackend is a store with the outbox on (cap records a slot), and
// its client; mr is set for miniredis.
type outboxBackend struct {
	store *redisstore.Store
	rdb   redis.UniversalClient
	mr    *miniredis.Miniredis
}

// forEachOutboxBackend runs test on a real Redis, miniredis and the
// package's cluster, each with the outbox on.
func forEachOutboxBackend(t *testing.T, capacity int, test func(t *testing.T, b outboxBackend)) {
	opts := redisstore.Options{OutboxCap: capacity}
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.MustStartRedis(t).Client(t)
		test(t, outboxBackend{store: redisstore.New(rdb, opts), rdb: rdb})
	})
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		mr := redistest.MustStartMiniredis(t)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { rdb.Close() })
		test(t, outboxBackend{store: redisstore.New(rdb, opts), rdb: rdb, mr: mr})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		b := clusterBackend(t, opts)
		test(t, outboxBackend{store: b.store, rdb: b.rdb})
	})
}

// drain reads every record of every slot with records, oldest first per
// slot, trimming what it read under a lease, as the exporter does.
func drain(tb testing.TB, s *redisstore.Store, now time.Time) []validation.Record {
	tb.Helper()
	ctx := context.Background()
	pending, err := s.Pending(ctx, now)
	if err != nil {
		tb.Fatal(err)
	}
	var slots []int
	for _, sl := range pending {
		if sl.Len > 0 {
			slots = append(slots, sl.Slot)
		}
	}
	if held, err := s.Lease(ctx, slots, "test", time.Minute); err != nil || len(held) != len(slots) {
		tb.Fatalf("Lease(%v) = %v, %v", slots, held, err)
	}
	var all []validation.Record
	for len(slots) > 0 {
		batches, err := s.Read(ctx, slots, 3)
		if err != nil {
			tb.Fatal(err)
		}
		slots = nil
		for _, b := range batches {
			all = append(all, b.Records...)
			slots = append(slots, b.Slot)
		}
		if trimmed, err := s.Trim(ctx, batches, "test", time.Minute); err != nil || len(trimmed) != len(batches) {
			tb.Fatalf("Trim = %v, %v", trimmed, err)
		}
	}
	return all
}

// TestOutboxCarriesEveryDecision: every event a decision writes to the
// audit reaches the outbox in the same step, refusals included, with
// per-customer sequence numbers that follow each other, and nothing else
// does; read and trimmed, the outbox is empty.
func TestOutboxCarriesEveryDecision(t *testing.T) {
	forEachOutboxBackend(t, testOutboxCap, func(t *testing.T, b outboxBackend) {
		ctx, s := context.Background(), b.store
		now := time.Now()
		customers := []string{"OB-1", "OB-2", "OB-3"}
		for _, cust := range customers {
			c := hold(t, s, cust, "credit_card", now)
			_, _, err := s.Hold(ctx, holdRequest(t, cust, "personal_loan", now))
			wantReason(t, err, validation.ReasonHoldExists)
			if _, _, err := redeemToken(s, c, "card-service", now); err != nil {
				t.Fatal(err)
			}
			_, _, err = s.Hold(ctx, holdRequest(t, cust, "personal_loan", now))
			wantReason(t, err, validation.ReasonConflictingProduct)
			if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: cust, Product: "credit_card", Actor: "ops", Now: now}); err != nil {
				t.Fatal(err)
			}
			c = hold(t, s, cust, "personal_loan", now)
			if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: cust, CheckID: c.ID, Actor: "branch-portal", Placer: "branch-portal", Now: now}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Block(ctx, validation.BlockRequest{CustomerID: cust, Actor: "ops", Reason: "fraud", Now: now}); err != nil {
				t.Fatal(err)
			}
		}
		recs := drain(t, s, now)
		for _, cust := range customers {
			var got []validation.Record
			for _, r := range recs {
				if r.Customer == cust {
					got = append(got, r)
				}
			}
			for i, r := range got {
				if r.ID != validation.RecordID(cust, r.Seq) || (i > 0 && r.Seq != got[i-1].Seq+1) {
					t.Fatalf("%s: record %d is %s (seq %d after %d); want ids of consecutive numbers", cust, i, r.ID, r.Seq, got[max(i-1, 0)].Seq)
				}
			}
			audit, err := s.Audit(ctx, cust, 1000, now)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := eventKeys(recordEvents(got)...), eventKeys(audit...); !slices.Equal(g, w) {
				t.Fatalf("%s: the outbox carried\n%v\nthe audit has\n%v", cust, g, w)
			}
			// In the order they were decided.
			var types []validation.EventType
			for _, r := range got {
				types = append(types, r.Type)
			}
			want := []validation.EventType{validation.EventChecked, validation.EventRefused, validation.EventRedeemed, validation.EventRefused,
				validation.EventReleased, validation.EventChecked, validation.EventCancelled, validation.EventBlocked}
			if !slices.Equal(types, want) {
				t.Fatalf("%s: records %v, want %v", cust, types, want)
			}
		}
		if rest := drain(t, s, now); len(rest) != 0 {
			t.Fatalf("%d records left after the outbox was drained", len(rest))
		}
	})
}

// recordEvents are the events of records.
func recordEvents(recs []validation.Record) []validation.Event {
	evs := make([]validation.Event, len(recs))
	for i, r := range recs {
		evs[i] = r.Event
	}
	return evs
}

// eventKeys lists events as comparable strings, sorted.
func eventKeys(evs ...validation.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s %s %s %s %s %s %v %s %d %s %s", ev.At.UTC().Format(time.RFC3339Nano), ev.Type, ev.Product,
			ev.CheckID, ev.Actor, ev.Reason, ev.Reasons, ev.Note, ev.Fence, ev.PolicyVersion, ev.Agent))
	}
	slices.Sort(out)
	return out
}

// TestOutboxFullRefusesDecisions: at its bound the outbox refuses every
// decision with outbox_full, writing nothing (no hold, no audit); an
// expiry, which is recorded by any read, still is, past the bound; once
// the exporter trims, decisions are taken again.
func TestOutboxFullRefusesDecisions(t *testing.T) {
	forEachOutboxBackend(t, 2, func(t *testing.T, b outboxBackend) {
		ctx, s := context.Background(), b.store
		now := time.Now()
		// One customer fills its slot's outbox: checked, then refused.
		req := holdRequest(t, "OF-1", "credit_card", now)
		req.Rule.HoldTTL = time.Second
		c, _, err := s.Hold(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Hold(ctx, holdRequest(t, "OF-1", "personal_loan", now))
		wantReason(t, err, validation.ReasonHoldExists)

		_, _, err = s.Hold(ctx, holdRequest(t, "OF-1", "personal_loan", now))
		wantReason(t, err, validation.ReasonOutboxFull)
		_, _, err = redeemToken(s, c, "card-service", now)
		wantReason(t, err, validation.ReasonOutboxFull)
		audit, err := s.Audit(ctx, "OF-1", 100, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(audit) != 2 { // the live hold's checked event, the refusal
			t.Fatalf("audit after refusals at the bound: %v, want the 2 events before it", audit)
		}

		// The hold expires: a read records it past the bound.
		later := now.Add(2 * time.Second)
		if b.mr != nil {
			b.mr.FastForward(2 * time.Second)
		} else {
			waitHoldGone(b.rdb)(t, "OF-1")
		}
		if _, err := s.Customer(ctx, "OF-1", later); err != nil {
			t.Fatal(err)
		}
		recs := drain(t, s, later)
		if got := len(recs); got != 3 || recs[2].Type != validation.EventExpired {
			t.Fatalf("records %v, want checked, refused, expired", recs)
		}
		// Drained, the slot takes decisions again.
		hold(t, s, "OF-1", "personal_loan", later)
	})
}

// TestSweepRecordsUntouchedExpiry: a hold nobody touches again is found by
// its slot's expiry index once due, and the sweep records its expiry, so
// the outbox carries it; the index is empty after.
func TestSweepRecordsUntouchedExpiry(t *testing.T) {
	forEachOutboxBackend(t, testOutboxCap, func(t *testing.T, b outboxBackend) {
		ctx, s := context.Background(), b.store
		now := time.Now()
		req := holdRequest(t, "SW-1", "credit_card", now)
		req.Rule.HoldTTL = time.Second
		c, _, err := s.Hold(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		drain(t, s, now) // the checked record
		slots, err := s.Pending(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(slots) != 0 {
			t.Fatalf("Pending before the expiry = %v, want nothing", slots)
		}
		later := now.Add(1100 * time.Millisecond)
		if b.mr != nil {
			b.mr.FastForward(2 * time.Second)
		} else {
			waitHoldGone(b.rdb)(t, "SW-1")
		}
		slots, err = s.Pending(ctx, later)
		if err != nil {
			t.Fatal(err)
		}
		if len(slots) != 1 || !slots[0].Due || slots[0].Slot != redisstore.KeySlot("SW-1") {
			t.Fatalf("Pending after the expiry = %v, want SW-1's slot due", slots)
		}
		slot := slots[0].Slot
		n, err := s.Sweep(ctx, slot, later, 10)
		if err != nil || n != 1 {
			t.Fatalf("Sweep = %d, %v; want 1 expiry settled", n, err)
		}
		recs := drain(t, s, later)
		if len(recs) != 1 || recs[0].Type != validation.EventExpired || recs[0].CheckID != c.ID || !recs[0].At.Equal(c.ExpiresAt) {
			t.Fatalf("records after the sweep = %+v, want the expiry of %s at %s", recs, c.ID, c.ExpiresAt)
		}
		if slots, err := s.Pending(ctx, later); err != nil || len(slots) != 0 {
			t.Fatalf("Pending after the sweep = %v, %v; want nothing", slots, err)
		}
		if n, err := s.Sweep(ctx, slot, later, 10); err != nil || n != 0 {
			t.Fatalf("a second sweep settled %d (%v), want 0", n, err)
		}
	})
}

// TestOutboxTrimNeedsTheLease: only the lease's owner trims, and only up
// to what it read; a lease is not taken from its owner.
func TestOutboxTrimNeedsTheLease(t *testing.T) {
	forEachOutboxBackend(t, testOutboxCap, func(t *testing.T, b outboxBackend) {
		ctx, s := context.Background(), b.store
		now := time.Now()
		hold(t, s, "TL-1", "credit_card", now)
		_, _, err := s.Hold(ctx, holdRequest(t, "TL-1", "personal_loan", now))
		wantReason(t, err, validation.ReasonHoldExists)
		slot := redisstore.KeySlot("TL-1")
		if held, err := s.Lease(ctx, []int{slot}, "a", time.Minute); err != nil || len(held) != 1 {
			t.Fatalf("Lease(a) = %v, %v", held, err)
		}
		if held, err := s.Lease(ctx, []int{slot}, "b", time.Minute); err != nil || len(held) != 0 {
			t.Fatalf("Lease(b) while a holds it = %v, %v; want none", held, err)
		}
		batches, err := s.Read(ctx, []int{slot}, 1)
		if err != nil || len(batches) != 1 || len(batches[0].Records) != 1 {
			t.Fatalf("Read = %v, %v", batches, err)
		}
		if trimmed, err := s.Trim(ctx, batches, "b", time.Minute); err != nil || len(trimmed) != 0 {
			t.Fatalf("Trim by b = %v, %v; want nothing trimmed", trimmed, err)
		}
		if trimmed, err := s.Trim(ctx, batches, "a", time.Minute); err != nil || len(trimmed) != 1 {
			t.Fatalf("Trim by a = %v, %v; want the slot trimmed", trimmed, err)
		}
		rest, err := s.Read(ctx, []int{slot}, 10)
		if err != nil || len(rest) != 1 || len(rest[0].Records) != 1 || rest[0].Records[0].Seq != batches[0].Records[0].Seq+1 {
			t.Fatalf("after trimming the first record: %v, %v; want the second alone", rest, err)
		}
	})
}

// TestSlotTagsLandInTheirSlots: each slot's keys hash to that slot, as the
// server computes it (CLUSTER KEYSLOT on the cluster), and a customer's
// keys and its slot's keys share a slot.
func TestSlotTagsLandInTheirSlots(t *testing.T) {
	if got, want := redisstore.KeySlot("123456789"), 0x31C3; got != want { // the cluster specification's example
		t.Fatalf("KeySlot(123456789) = %d, want %d", got, want)
	}
	rdb := clusterBackend(t, redisstore.Options{}).rdb
	ctx := context.Background()
	for _, slot := range []int{0, 1, 5460, 5461, 10922, 10923, 12739, 16383} {
		for _, name := range []string{"outbox", "expiring", "lease"} {
			got, err := rdb.ClusterKeySlot(ctx, redisstore.SlotKey(slot, name)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if int(got) != slot {
				t.Fatalf("%s is in slot %d, want %d", redisstore.SlotKey(slot, name), got, slot)
			}
		}
	}
	for _, c := range []string{"C-1", "OB-2", "A", "9Z:X.Y-Z_0"} {
		got, err := rdb.ClusterKeySlot(ctx, "arb:{"+c+"}:meta").Result()
		if err != nil {
			t.Fatal(err)
		}
		if int(got) != redisstore.KeySlot(c) {
			t.Fatalf("customer %s is in slot %d, KeySlot says %d", c, got, redisstore.KeySlot(c))
		}
	}
}

// TestOutboxFullRefusesReleaseAndUnblock: a release or an unblock refused
// at the bound says outbox_full, not grant_not_found or not_found: a
// product service takes grant_not_found as "already released" and drops its
// pending release, which would leave the grant at arbiter with no product
// behind it; an operator told not_found thinks the customer unblocked.
func TestOutboxFullRefusesReleaseAndUnblock(t *testing.T) {
	forEachOutboxBackend(t, 2, func(t *testing.T, b outboxBackend) {
		ctx, s := context.Background(), b.store
		now := time.Now()
		c := hold(t, s, "OR-1", "credit_card", now)
		if _, _, err := redeemToken(s, c, "card-service", now); err != nil {
			t.Fatal(err)
		}
		_, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "OR-1", Product: "credit_card", CheckID: c.ID, Actor: "card-service", Now: now})
		wantReason(t, err, validation.ReasonOutboxFull)
		cu, err := s.Customer(ctx, "OR-1", now)
		if err != nil {
			t.Fatal(err)
		}
		if len(cu.Grants) != 1 {
			t.Fatalf("grants after a refused release: %v, want the grant kept", cu.Grants)
		}

		if _, err := s.Block(ctx, validation.BlockRequest{CustomerID: "OU-1", Reason: "fraud", Actor: "ops", Now: now}); err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Hold(ctx, holdRequest(t, "OU-1", "credit_card", now))
		wantReason(t, err, validation.ReasonCustomerBlocked)
		wantReason(t, s.Unblock(ctx, "OU-1", "ops", now), validation.ReasonOutboxFull)
	})
}
