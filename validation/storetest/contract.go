package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

func Check(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()

	t.Run("places a hold with a fence and the secret", func(t *testing.T) {
		c := NewHold(t, s, "C-1", "credit_card", t0)
		if got, want := c.Status, validation.StatusHeld; got != want {
			t.Fatalf("status = %s, want %s", got, want)
		}
		// A customer's first fence is the clock (ms): fences never
		// decrease, even once a customer's keys expired (docs/api.md, Fence).
		if got, want := c.Fence, t0.UnixMilli(); got != want {
			t.Fatalf("fence = %d, want %d", got, want)
		}
		if got, want := c.ExpiresAt, t0.Add(5*time.Minute); !got.Equal(want) {
			t.Fatalf("expires = %v, want %v", got, want)
		}
		got, err := s.Check(ctx, "C-1", c.ID, t0)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Secret) != "0123456789abcdefghij" || got.PlacedBy != "branch-portal" || got.AgentID != "ana" {
			t.Fatalf("stored check = %+v", got)
		}
	})

	t.Run("refuses a competing check while the hold lives", func(t *testing.T) {
		_, _, err := s.Hold(ctx, NewHoldRequest(t, "C-1", "personal_loan", t0.Add(time.Second)))
		e := WantReason(t, err, validation.ReasonHoldExists)
		if e.HeldProduct != "credit_card" || e.HeldBy != "branch-portal" || !e.HeldUntil.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("refusal details = %+v", e)
		}
		// The same product is refused too: one live hold per customer.
		_, _, err = s.Hold(ctx, NewHoldRequest(t, "C-1", "credit_card", t0.Add(time.Second)))
		WantReason(t, err, validation.ReasonHoldExists)
	})

	t.Run("other customers are independent", func(t *testing.T) {
		c := NewHold(t, s, "C-2", "personal_loan", t0)
		if c.Fence != t0.UnixMilli() {
			t.Fatalf("fence of a new customer = %d, want %d", c.Fence, t0.UnixMilli())
		}
	})
}

func RedeemToken(t *testing.T, b Backend) {
	s := b.Store
	c := NewHold(t, s, "C-1", "credit_card", t0)

	g, replayed, err := TokenRedemption(s, c, "card-service", t0.Add(time.Minute))
	if err != nil || replayed {
		t.Fatalf("redeem = %v, replayed %v", err, replayed)
	}
	if g.CheckID != c.ID || g.Fence != c.Fence || g.RedeemedBy != "card-service" || !g.GrantedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("grant = %+v", g)
	}

	t.Run("the same client repeating gets the same grant", func(t *testing.T) {
		again, replayed, err := TokenRedemption(s, c, "card-service", t0.Add(2*time.Minute))
		if err != nil || !replayed || again != g {
			t.Fatalf("repeat = %+v, %v, %v; want %+v replayed", again, replayed, err, g)
		}
	})
	t.Run("another client is told it was redeemed", func(t *testing.T) {
		_, _, err := TokenRedemption(s, c, "ops", t0.Add(2*time.Minute))
		WantError(t, err, validation.AlreadyRedeemed("card-service"))
	})
	t.Run("the check reads redeemed", func(t *testing.T) {
		got, err := s.Check(context.Background(), "C-1", c.ID, t0.Add(3*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != validation.StatusRedeemed || got.RedeemedBy != "card-service" || got.Secret != nil {
			t.Fatalf("check = %+v", got)
		}
	})
	t.Run("the exclusive product is refused, naming the grant", func(t *testing.T) {
		_, _, err := s.Hold(context.Background(), NewHoldRequest(t, "C-1", "personal_loan", t0.Add(time.Hour)))
		e := WantReason(t, err, validation.ReasonConflictingProduct)
		if !slices.Equal(e.HeldProducts, []string{"credit_card"}) || !e.Violations[0].Since.Equal(g.GrantedAt) {
			t.Fatalf("refusal = %+v", e)
		}
	})
	t.Run("the same product is refused", func(t *testing.T) {
		_, _, err := s.Hold(context.Background(), NewHoldRequest(t, "C-1", "credit_card", t0.Add(time.Hour)))
		WantReason(t, err, validation.ReasonAlreadyHoldsProduct)
	})
	t.Run("a customer record lists the grant and no hold", func(t *testing.T) {
		cust, err := s.Customer(context.Background(), "C-1", t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(cust.Grants) != 1 || cust.Grants[0] != g || cust.Hold != nil {
			t.Fatalf("customer = %+v", cust)
		}
	})
}

func RefusalListsEveryFailedRule(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	// A policy where the loan may be held twice and conflicts with the card.
	card := NewHold(t, s, "C-9", "credit_card", t0)
	if _, _, err := TokenRedemption(s, card, "card-service", t0); err != nil {
		t.Fatal(err)
	}
	// Import a loan next to it by bypassing the policy through another rule
	// (no conflicts), then place a live hold.
	loose := LooseRule(t, "personal_loan")
	if _, err := s.Import(ctx, validation.ImportRequest{Rule: loose, CustomerID: "C-9", CheckID: NewCheckID(t, "C-9"), Actor: "ops", GrantedAt: t0.Add(time.Minute), Now: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	req := NewHoldRequest(t, "C-9", "credit_card", t0.Add(2*time.Minute))
	_, _, err := s.Hold(ctx, req)
	e := WantReason(t, err, validation.ReasonAlreadyHoldsProduct)
	var got []validation.Reason
	for _, v := range e.Violations {
		got = append(got, v.Reason)
	}
	if want := []validation.Reason{validation.ReasonAlreadyHoldsProduct, validation.ReasonConflictingProduct}; !slices.Equal(got, want) {
		t.Fatalf("violations = %v, want %v", got, want)
	}
}

func RedeemOTP(t *testing.T, b Backend) {
	s := b.Store
	c := NewHold(t, s, "C-1", "personal_loan", t0)
	now := t0.Add(40 * time.Second)

	t.Run("a wrong code counts down the attempts", func(t *testing.T) {
		for left := 4; left >= 1; left-- {
			_, _, err := OTPRedemption(s, "C-1", "personal_loan", WrongCode(t, c.Secret, now), "loan-service", now)
			WantError(t, err, validation.WrongCode(left))
		}
	})
	t.Run("the right code grants, even as the last attempt", func(t *testing.T) {
		code, _, err := tokens.OTPCode(c.Secret, now)
		if err != nil {
			t.Fatal(err)
		}
		g, replayed, err := OTPRedemption(s, "C-1", "personal_loan", code, "loan-service", now)
		if err != nil || replayed || g.CheckID != c.ID {
			t.Fatalf("redeem = %+v, %v, %v", g, replayed, err)
		}
		// A retry by the same client replays; the code can never grant twice.
		g2, replayed, err := OTPRedemption(s, "C-1", "personal_loan", code, "loan-service", now)
		if err != nil || !replayed || g2 != g {
			t.Fatalf("retry = %+v, %v, %v", g2, replayed, err)
		}
	})
	t.Run("the previous period's code is accepted (skew 1)", func(t *testing.T) {
		c := NewHold(t, s, "C-2", "credit_card", t0)
		code, _, err := tokens.OTPCode(c.Secret, now.Add(-30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := OTPRedemption(s, "C-2", "credit_card", code, "card-service", now); err != nil {
			t.Fatalf("previous-period code: %v", err)
		}
	})
	t.Run("a code for another product finds no hold", func(t *testing.T) {
		c := NewHold(t, s, "C-3", "credit_card", t0)
		code, _, _ := tokens.OTPCode(c.Secret, now)
		_, _, err := OTPRedemption(s, "C-3", "personal_loan", code, "loan-service", now)
		WantReason(t, err, validation.ReasonHoldExpired)
	})
}

func OTPLockout(t *testing.T, b Backend) {
	s := b.Store
	c := NewHold(t, s, "C-1", "credit_card", t0)
	now := t0.Add(time.Minute)
	for i := 1; i <= 4; i++ {
		_, _, err := OTPRedemption(s, "C-1", "credit_card", WrongCode(t, c.Secret, now), "card-service", now)
		WantReason(t, err, validation.ReasonOTPInvalid)
	}
	_, _, err := OTPRedemption(s, "C-1", "credit_card", WrongCode(t, c.Secret, now), "card-service", now)
	WantError(t, err, validation.OTPLocked())

	// The burnt hold is gone: even the right code fails, and so does the token.
	code, _, _ := tokens.OTPCode(c.Secret, now)
	_, _, err = OTPRedemption(s, "C-1", "credit_card", code, "card-service", now)
	WantReason(t, err, validation.ReasonOTPLocked)
	_, _, err = TokenRedemption(s, c, "card-service", now)
	WantReason(t, err, validation.ReasonOTPLocked)

	got, err := s.Check(context.Background(), "C-1", c.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != validation.StatusCancelled || got.EndReason != "otp_locked" {
		t.Fatalf("check = %+v, want cancelled by otp_locked", got)
	}
	// The customer is free again, and a new hold counts its own wrong
	// codes from zero.
	next := NewHold(t, s, "C-1", "credit_card", now)
	_, _, err = OTPRedemption(s, "C-1", "credit_card", WrongCode(t, next.Secret, now), "card-service", now)
	if e := WantReason(t, err, validation.ReasonOTPInvalid); e.AttemptsLeft == nil || *e.AttemptsLeft != 4 {
		t.Fatalf("first wrong code on a new hold: attempts left %v, want 4", e.AttemptsLeft)
	}
}

func Cancel(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	// Who may cancel a credit card hold branch-portal placed: the
	// products the actor may cancel, and the client whose own checks it
	// may cancel too.
	for i, tc := range []struct {
		products []string
		placer   string
		ok       bool
	}{
		{products: []string{"personal_loan"}, placer: "loan-service"},
		{products: []string{}, placer: "loan-service"},
		{products: []string{}, placer: ""},
		{products: []string{}, placer: "branch-portal", ok: true},
		{products: []string{"credit_card"}, placer: "card-service", ok: true},
		{products: nil, ok: true},
	} {
		customer := fmt.Sprintf("W-%d", i)
		c := NewHold(t, s, customer, "credit_card", t0)
		_, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: customer, CheckID: c.ID, Actor: "x", Products: tc.products, Placer: tc.placer, Now: t0})
		if tc.ok && err != nil {
			t.Fatalf("cancel with products %q, placer %q = %v, want cancelled", tc.products, tc.placer, err)
		}
		if !tc.ok {
			WantError(t, err, validation.CancelForbidden("credit_card"))
		}
	}

	c := NewHold(t, s, "C-1", "credit_card", t0)
	got, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: c.ID, Actor: "branch-portal", Agent: "ana", Now: t0.Add(time.Second)})
	if err != nil || got.Status != validation.StatusCancelled || got.EndedBy != "branch-portal" {
		t.Fatalf("cancel = %+v, %v", got, err)
	}
	if ev, _ := s.Audit(ctx, "C-1", 1, t0.Add(time.Second)); ev[0].Type != validation.EventCancelled || ev[0].Agent != "ana" {
		t.Fatalf("cancel event = %+v, want agent ana", ev[0])
	}
	_, err = s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: c.ID, Actor: "branch-portal", Now: t0.Add(time.Second)})
	WantError(t, err, validation.CheckNotHeld(validation.StatusCancelled))
	_, _, err = TokenRedemption(s, c, "card-service", t0.Add(2*time.Second))
	WantError(t, err, validation.HoldExpired(string(validation.StatusCancelled)))
	_, err = s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: NewCheckID(t, "C-1"), Actor: "branch-portal", Now: t0})
	WantError(t, err, validation.CheckNotFound())
	NewHold(t, s, "C-1", "personal_loan", t0.Add(3*time.Second))
}

func ReleaseAndImport(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	c := NewHold(t, s, "C-1", "credit_card", t0)
	if _, _, err := TokenRedemption(s, c, "card-service", t0); err != nil {
		t.Fatal(err)
	}
	rel := validation.ReleaseRequest{CustomerID: "C-1", Product: "credit_card", Actor: "card-service", Now: t0.Add(time.Hour)}
	if g, err := s.Release(ctx, rel); err != nil || g.CheckID != c.ID {
		t.Fatalf("release = %+v, %v", g, err)
	}
	_, err := s.Release(ctx, rel)
	WantReason(t, err, validation.ReasonGrantNotFound)

	imp := validation.ImportRequest{Rule: DefaultRule(t, "personal_loan"), CustomerID: "C-1", CheckID: NewCheckID(t, "C-1"), Actor: "ops", GrantedAt: t0.Add(-24 * time.Hour), Now: t0.Add(2 * time.Hour)}
	g, err := s.Import(ctx, imp)
	if err != nil || g.Fence <= c.Fence || !g.GrantedAt.Equal(imp.GrantedAt) {
		t.Fatalf("import = %+v, %v (fence must continue from the hold's)", g, err)
	}
	imp.Rule, imp.CheckID = DefaultRule(t, "credit_card"), NewCheckID(t, "C-1")
	_, err = s.Import(ctx, imp)
	WantReason(t, err, validation.ReasonConflictingProduct)
}

func RedeemReappliesThePolicy(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	// A live card hold, then a loan imported beside it: redeeming the
	// card would break the policy, so it is refused and the hold ends.
	c := NewHold(t, s, "C-1", "credit_card", t0)
	if _, err := s.Import(ctx, validation.ImportRequest{Rule: DefaultRule(t, "personal_loan"), CustomerID: "C-1", CheckID: NewCheckID(t, "C-1"), Actor: "ops", GrantedAt: t0, Now: t0}); err != nil {
		t.Fatal(err)
	}
	_, _, err := TokenRedemption(s, c, "card-service", t0.Add(time.Second))
	WantReason(t, err, validation.ReasonConflictingProduct)
	got, err := s.Check(ctx, "C-1", c.ID, t0.Add(time.Second))
	if err != nil || got.Status != validation.StatusCancelled || got.EndReason != string(validation.ReasonConflictingProduct) {
		t.Fatalf("check = %+v, %v", got, err)
	}
	cust, err := s.Customer(ctx, "C-1", t0.Add(time.Second))
	if err != nil || len(cust.Grants) != 1 || cust.Grants[0].Product != "personal_loan" {
		t.Fatalf("customer = %+v, %v", cust, err)
	}
}

func Max(t *testing.T, b Backend) {
	s := b.Store
	for i := 1; i <= 3; i++ {
		req := NewHoldRequest(t, "C-1", "credit_card", t0.Add(time.Duration(i)*time.Minute))
		req.Rule = WithMax(req.Rule, 2)
		c, _, err := s.Hold(context.Background(), req)
		if i == 3 {
			WantReason(t, err, validation.ReasonAlreadyHoldsProduct)
			return
		}
		if err != nil {
			t.Fatalf("hold %d: %v", i, err)
		}
		if _, _, err := s.Redeem(context.Background(), validation.RedeemRequest{Rule: req.Rule, CustomerID: "C-1", CheckID: c.ID, Actor: "card-service", Now: req.Now, MaxAttempts: 5}); err != nil {
			t.Fatalf("redeem %d: %v", i, err)
		}
	}
}

func Idempotency(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	req := NewHoldRequest(t, "C-1", "credit_card", t0)
	req.IdempotencyKey, req.RequestHash = "k1", "body-1"
	first, replayed, err := s.Hold(ctx, req)
	if err != nil || replayed {
		t.Fatalf("first = %v, replayed %v", err, replayed)
	}
	retry := req
	retry.CheckID = NewCheckID(t, "C-1") // a retry makes a fresh id; the first one wins
	again, replayed, err := s.Hold(ctx, retry)
	if err != nil || !replayed || again.ID != first.ID || again.Fence != first.Fence || string(again.Secret) != string(first.Secret) {
		t.Fatalf("replay = %+v, %v, %v; want check %s", again, replayed, err, first.ID)
	}
	other := retry
	other.RequestHash = "body-2"
	_, _, err = s.Hold(ctx, other)
	WantError(t, err, validation.IdempotencyKeyReused())

	// A refusal is not recorded: the retry decides again, so once the
	// hold in the way is gone the same key places a hold.
	ref := NewHoldRequest(t, "C-1", "personal_loan", t0)
	ref.IdempotencyKey, ref.RequestHash = "k2", "body-3"
	_, replayed, err = s.Hold(ctx, ref)
	WantReason(t, err, validation.ReasonHoldExists)
	if replayed {
		t.Fatal("first refusal marked replayed")
	}
	if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: first.ID, Actor: "branch-portal", Now: t0}); err != nil {
		t.Fatal(err)
	}
	ref.CheckID = NewCheckID(t, "C-1")
	placed, replayed, err := s.Hold(ctx, ref)
	if err != nil || replayed || placed.Product != "personal_loan" {
		t.Fatalf("retry after the hold ended = %+v, %v, %v; want a new loan hold", placed, replayed, err)
	}
	// And that outcome is now the key's: a further retry replays it.
	ref.CheckID = NewCheckID(t, "C-1")
	again, replayed, err = s.Hold(ctx, ref)
	if err != nil || !replayed || again.ID != placed.ID {
		t.Fatalf("replay = %+v, %v, %v; want check %s", again, replayed, err, placed.ID)
	}

	// The key is scoped to the customer: the same key (and client) for
	// another customer is another request, and places its own hold.
	elsewhere := NewHoldRequest(t, "C-9", "credit_card", t0)
	elsewhere.IdempotencyKey, elsewhere.RequestHash = "k1", "body-1"
	c9, replayed, err := s.Hold(ctx, elsewhere)
	if err != nil || replayed || c9.CustomerID != "C-9" {
		t.Fatalf("same key, other customer = %+v, %v, %v; want its own hold", c9, replayed, err)
	}
}

func AuditAndFence(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	var fences []int64
	for i := 0; i < 3; i++ {
		now := t0.Add(time.Duration(i) * time.Hour)
		c := NewHold(t, s, "C-1", "credit_card", now)
		fences = append(fences, c.Fence)
		if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: c.ID, Actor: "branch-portal", Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	if !(fences[0] < fences[1] && fences[1] < fences[2]) {
		t.Fatalf("fences = %v, want increasing", fences)
	}
	events, err := s.Audit(ctx, "C-1", 4, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var types []validation.EventType
	for _, e := range events {
		types = append(types, e.Type)
	}
	want := []validation.EventType{validation.EventCancelled, validation.EventChecked, validation.EventCancelled, validation.EventChecked}
	if !slices.Equal(types, want) {
		t.Fatalf("audit types = %v, want %v", types, want)
	}
	if events[0].Actor != "branch-portal" || events[1].Agent != "ana" {
		t.Fatalf("audit actors = %+v", events[:2])
	}
}

func ReleaseByCheck(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	var ids []string
	for i := 0; i < 2; i++ {
		req := NewHoldRequest(t, "C-1", "credit_card", t0.Add(time.Duration(i)*time.Minute))
		req.Rule = WithMax(req.Rule, 2)
		c, _, err := s.Hold(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Redeem(ctx, validation.RedeemRequest{Rule: req.Rule, CustomerID: "C-1", CheckID: c.ID, Actor: "card-service", Now: req.Now, MaxAttempts: 5}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	// The older grant, by its check id, although it is not the most recent.
	g, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "C-1", Product: "credit_card", CheckID: ids[0], Actor: "card-service", Now: t0.Add(time.Hour)})
	if err != nil || g.CheckID != ids[0] {
		t.Fatalf("release of %s = %+v, %v", ids[0], g, err)
	}
	_, err = s.Release(ctx, validation.ReleaseRequest{CustomerID: "C-1", Product: "credit_card", CheckID: ids[0], Actor: "card-service", Now: t0.Add(time.Hour)})
	WantReason(t, err, validation.ReasonGrantNotFound)
	cust, _ := s.Customer(ctx, "C-1", t0.Add(time.Hour))
	if len(cust.Grants) != 1 || cust.Grants[0].CheckID != ids[1] {
		t.Fatalf("remaining grants = %+v", cust.Grants)
	}
}

// FenceNeverDecreases: a fence is one more than the last, or
// the clock when that is greater, so two holds in one millisecond and an
// arbiter whose clock runs behind still get increasing fences.
func FenceNeverDecreases(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	var last int64
	for i, now := range []time.Time{t0, t0, t0.Add(-time.Hour), t0.Add(time.Hour)} {
		c := NewHold(t, s, "C-1", "credit_card", now)
		if c.Fence <= last {
			t.Fatalf("hold %d at %v: fence %d, want more than %d", i, now, c.Fence, last)
		}
		last = c.Fence
		if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: c.ID, Actor: "x", Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	imp := validation.ImportRequest{Rule: DefaultRule(t, "personal_loan"), CustomerID: "C-1", CheckID: NewCheckID(t, "C-1"), Actor: "ops", GrantedAt: t0.Add(-2 * time.Hour), Now: t0.Add(-2 * time.Hour)}
	if g, err := s.Import(ctx, imp); err != nil || g.Fence <= last {
		t.Fatalf("import = %+v, %v; want a fence above %d", g, err, last)
	}
}

func StaleToken(t *testing.T, b Backend) {
	s := b.Store
	first := NewHold(t, s, "C-1", "credit_card", t0)
	cancel(t, s, first, t0.Add(time.Second))
	second := NewHold(t, s, "C-1", "credit_card", t0.Add(2*time.Second))

	t.Run("the cancelled check's token is refused", func(t *testing.T) {
		_, _, err := TokenRedemption(s, first, "card-service", t0.Add(3*time.Second))
		WantReason(t, err, validation.ReasonHoldExpired)
	})
	t.Run("the newer hold of the same product is untouched", func(t *testing.T) {
		wantHold(t, s, "C-1", second.ID, t0.Add(3*time.Second))
	})
	t.Run("the newer hold's own token redeems it", func(t *testing.T) {
		g, _, err := TokenRedemption(s, second, "card-service", t0.Add(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := g.CheckID, second.ID; got != want {
			t.Fatalf("grant of check %s, want %s", got, want)
		}
	})
}

func StaleCancel(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	first := NewHold(t, s, "C-1", "credit_card", t0)
	cancel(t, s, first, t0.Add(time.Second))
	second := NewHold(t, s, "C-1", "credit_card", t0.Add(2*time.Second))

	_, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "C-1", CheckID: first.ID, Actor: "branch-portal", Now: t0.Add(3 * time.Second)})
	WantReason(t, err, validation.ReasonCheckNotHeld)
	wantHold(t, s, "C-1", second.ID, t0.Add(3*time.Second))
}

// ReplayOfAnEndedCheck: a retry of a check whose hold has ended
// replays that check, without the secret of the customer's newer hold (from
// which arbiter would compute, and send, a live OTP).
func ReplayOfAnEndedCheck(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	req := NewHoldRequest(t, "C-1", "credit_card", t0)
	req.IdempotencyKey, req.RequestHash = "k1", "body-1"
	first, _, err := s.Hold(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	cancel(t, s, first, t0.Add(time.Second))
	next := NewHoldRequest(t, "C-1", "credit_card", t0.Add(2*time.Second))
	next.Secret = []byte("another-hold-secret!")
	second, _, err := s.Hold(ctx, next)
	if err != nil {
		t.Fatal(err)
	}

	retry := req
	retry.CheckID, retry.Now = NewCheckID(t, "C-1"), t0.Add(3*time.Second)
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
}

// ExpirySettledByCheck: when the first script to touch a
// customer after an expiry is a new check, that check settles the expired
// hold (Expiry has a redemption do it).
func ExpirySettledByCheck(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	req := NewHoldRequest(t, "C-1", "credit_card", time.Now())
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
	second := NewHold(t, s, "C-1", "credit_card", now)
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
}

// RedeemOtherProduct: a redemption must name the product of the
// hold it redeems (a token's product is in its claims); another product's
// rule never turns the hold into a grant of that product.
func RedeemOtherProduct(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	c := NewHold(t, s, "C-1", "credit_card", t0)
	_, _, err := s.Redeem(ctx, validation.RedeemRequest{
		Rule: DefaultRule(t, "personal_loan"), CustomerID: "C-1", CheckID: c.ID, Actor: "loan-service", Now: t0.Add(time.Second), MaxAttempts: 5,
	})
	WantError(t, err, validation.TokenMismatch("product"))
	wantHold(t, s, "C-1", c.ID, t0.Add(time.Second))
}

// ReleaseMostRecent: without a check id, release ends the most
// recent grant of the product.
func ReleaseMostRecent(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	var ids []string
	for i := range 2 {
		req := NewHoldRequest(t, "C-1", "credit_card", t0.Add(time.Duration(i)*time.Minute))
		req.Rule = WithMax(req.Rule, 2)
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
}
