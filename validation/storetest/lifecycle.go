package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// HoldExpires: a redemption after the hold's TTL ran out is hold_expired, and it
// settles the expiry: the check reads expired at its ExpiresAt, the audit
// has the expired event, and the customer is free again. (redisstore's
// TestContractExpiry also counts the expiries it reports.)
func HoldExpires(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	req := NewHoldRequest(t, "C-1", "credit_card", time.Now())
	req.Rule.HoldTTL = time.Second
	c, _, err := s.Hold(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b.expire(t, "C-1")
	now := time.Now()
	if now.Before(c.ExpiresAt) {
		now = c.ExpiresAt
	}

	_, _, err = TokenRedemption(s, c, "card-service", now)
	WantReason(t, err, validation.ReasonHoldExpired)
	got, err := s.Check(ctx, "C-1", c.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != validation.StatusExpired || !got.EndedAt.Equal(c.ExpiresAt) || got.EndedBy != "arbiter" {
		t.Fatalf("check = %+v, want expired at %v by arbiter", got, c.ExpiresAt)
	}
	events, err := s.Audit(ctx, "C-1", 10, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Type != validation.EventExpired || events[0].CheckID != c.ID || !events[0].At.Equal(c.ExpiresAt) {
		t.Fatalf("audit = %+v, want expired then checked", events)
	}
	if next := NewHold(t, s, "C-1", "personal_loan", now); next.Fence <= c.Fence {
		t.Fatalf("fence after expiry = %d, want more than %d", next.Fence, c.Fence)
	}
}

// BlockLifecycle: a block cancels the live hold (reason customer_blocked), keeps the
// grants, refuses checks naming the block, and is lifted once.
func BlockLifecycle(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	card := NewHold(t, s, "C-1", "credit_card", t0)
	if _, _, err := TokenRedemption(s, card, "card-service", t0); err != nil {
		t.Fatal(err)
	}
	loan := NewHold(t, s, "C-2", "personal_loan", t0)

	for _, customer := range []string{"C-1", "C-2"} {
		ended, err := s.Block(ctx, validation.BlockRequest{CustomerID: customer, Reason: "fraud review", Actor: "ops", Now: t0.Add(time.Minute)})
		if err != nil {
			t.Fatalf("Block(%s): %v", customer, err)
		}
		if customer == "C-1" && ended != nil {
			t.Fatalf("block of a customer without a hold cancelled %+v", ended)
		}
		if customer == "C-2" && (ended == nil || ended.ID != loan.ID || ended.Status != validation.StatusCancelled || ended.EndReason != string(validation.ReasonCustomerBlocked)) {
			t.Fatalf("block cancelled %+v, want %s cancelled for customer_blocked", ended, loan.ID)
		}
	}
	_, _, err := TokenRedemption(s, loan, "loan-service", t0.Add(2*time.Minute))
	WantReason(t, err, validation.ReasonHoldExpired)

	_, _, err = s.Hold(ctx, NewHoldRequest(t, "C-1", "personal_loan", t0.Add(2*time.Minute)))
	e := WantReason(t, err, validation.ReasonCustomerBlocked)
	if v := e.Violations[0]; v.Note != "fraud review" || v.By != "ops" {
		t.Fatalf("violation = %+v, want the block's reason and author", v)
	}
	var got []validation.Reason
	for _, v := range e.Violations {
		got = append(got, v.Reason)
	}
	if want := []validation.Reason{validation.ReasonCustomerBlocked, validation.ReasonConflictingProduct}; !slices.Equal(got, want) {
		t.Fatalf("violations = %v, want %v", got, want)
	}
	cust, err := s.Customer(ctx, "C-1", t0.Add(2*time.Minute))
	if err != nil || cust.Block == nil || cust.Block.Reason != "fraud review" || len(cust.Grants) != 1 {
		t.Fatalf("customer = %+v, %v; want blocked, grant kept", cust, err)
	}

	if err := s.Unblock(ctx, "C-2", "ops", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	WantReason(t, s.Unblock(ctx, "C-2", "ops", t0.Add(3*time.Minute)), validation.ReasonNotFound)
	NewHold(t, s, "C-2", "personal_loan", t0.Add(4*time.Minute))
	events, err := s.Audit(ctx, "C-2", 10, t0.Add(4*time.Minute), validation.EventBlocked, validation.EventUnblocked)
	if err != nil || len(events) != 2 || events[0].Type != validation.EventUnblocked || events[1].Note != "fraud review" {
		t.Fatalf("audit = %+v, %v; want unblocked, blocked", events, err)
	}
}
