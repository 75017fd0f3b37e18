package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

// CaseStore is what the case tests need of a Store beyond
// validation.Store: opening and resolving a reconciliation case, with
// reconcile.Store's signatures. A Store without it skips them.
type CaseStore interface {
	OpenCase(ctx context.Context, c validation.Case, now time.Time) error
	ResolveCase(ctx context.Context, customerID, actor, note string, now time.Time) (validation.Case, error)
}

// openCase opens a reconciliation case of customer about products, opened
// at opened, as a run that found a double holding does.
func openCase(tb testing.TB, s CaseStore, customer string, opened time.Time, products ...string) validation.Case {
	tb.Helper()
	c := validation.Case{CustomerID: customer, Products: products, OpenedAt: opened, RunID: "rec_test",
		Detail: "Customer " + customer + " holds a Credit card at card-service and a Personal loan at loan-service: contact the customer."}
	if err := s.OpenCase(context.Background(), c, opened); err != nil {
		tb.Fatalf("OpenCase(%s): %v", customer, err)
	}
	return c
}

func resolveCase(tb testing.TB, s CaseStore, customer string, now time.Time) {
	tb.Helper()
	if _, err := s.ResolveCase(context.Background(), customer, "ops", "customer chose the card", now); err != nil {
		tb.Fatalf("ResolveCase(%s): %v", customer, err)
	}
}

// wantCaseOpen fails tb unless err is a case_open refusal naming case c.
func wantCaseOpen(tb testing.TB, err error, c validation.Case) {
	tb.Helper()
	e := WantReason(tb, err, validation.ReasonCaseOpen)
	if len(e.Violations) == 0 {
		tb.Fatalf("case_open without violations: %v", err)
	}
	v := e.Violations[0]
	if v.Reason != validation.ReasonCaseOpen || !slices.Equal(v.Products, c.Products) ||
		!v.Since.Equal(c.OpenedAt.Truncate(time.Millisecond)) || v.Note != c.Detail {
		tb.Fatalf("case_open violation = %+v, want the products %v, since %s and the words of case %+v", v, c.Products, c.OpenedAt, c)
	}
}

// CaseHoldsTheLine: while a customer's reconciliation case is
// open, a check of a product of the case, or of one that excludes one of
// them, is refused case_open, and so is the redemption of a hold placed
// before the case opened (the hold is kept); resolving the case lifts it.
func CaseHoldsTheLine(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	cs, ok := s.(CaseStore)
	if !ok {
		// The check and redeem rules read the case, so a Store without
		// cases cannot show that it honours them: that is a failure.
		t.Fatalf("%T does not open or resolve cases (storetest.CaseStore)", s)
	}
	opened := t0.Add(-24 * time.Hour)

	t.Run("a check of a product of the case is refused until it is resolved", func(t *testing.T) {
		c := openCase(t, cs, "C-1", opened, "credit_card", "personal_loan")
		for _, p := range c.Products {
			_, _, err := s.Hold(ctx, NewHoldRequest(t, "C-1", p, t0))
			wantCaseOpen(t, err, c)
		}
		e, err := s.Eligibility(ctx, validation.EligibilityRequest{Rule: DefaultRule(t, "credit_card"), CustomerID: "C-1", Now: t0})
		if err != nil || len(e.Violations) != 1 {
			t.Fatalf("eligibility = %+v, %v; want one case_open violation", e, err)
		}
		wantCaseOpen(t, &validation.Error{Reason: e.Violations[0].Reason, Violations: e.Violations}, c)
		evs, err := s.Audit(ctx, "C-1", 10, t0, validation.EventRefused)
		if err != nil || len(evs) != 2 || evs[0].Reason != validation.ReasonCaseOpen {
			t.Fatalf("refusals audited = %+v, %v; want two case_open", evs, err)
		}
		resolveCase(t, cs, "C-1", t0)
		NewHold(t, s, "C-1", "credit_card", t0)
	})

	t.Run("a product that excludes one of the case's is refused too, another is not", func(t *testing.T) {
		// A case about one product: more cards than the policy's max.
		c := openCase(t, cs, "C-2", opened, "credit_card")
		_, _, err := s.Hold(ctx, NewHoldRequest(t, "C-2", "personal_loan", t0))
		wantCaseOpen(t, err, c)
		req := NewHoldRequest(t, "C-2", "credit_card", t0)
		req.Rule = validation.Rule{Product: "savings", Title: "Savings account", HoldTTL: time.Minute,
			Limits: []validation.Limit{{Kind: validation.LimitProduct, Max: 1, Products: []string{"savings"}}}}
		if _, _, err := s.Hold(ctx, req); err != nil {
			t.Fatalf("a product outside the case's groups: %v", err)
		}
	})

	t.Run("a token redemption of a hold placed before the case is refused, the hold kept", func(t *testing.T) {
		h := NewHold(t, s, "C-3", "credit_card", t0)
		c := openCase(t, cs, "C-3", t0.Add(time.Second), "credit_card", "personal_loan")
		_, _, err := TokenRedemption(s, h, "card-service", t0.Add(2*time.Second))
		wantCaseOpen(t, err, c)
		wantHold(t, s, "C-3", h.ID, t0.Add(2*time.Second))
		resolveCase(t, cs, "C-3", t0.Add(3*time.Second))
		if g, _, err := TokenRedemption(s, h, "card-service", t0.Add(4*time.Second)); err != nil || g.CheckID != h.ID {
			t.Fatalf("redemption after the case was resolved = %+v, %v", g, err)
		}
	})

	t.Run("a redemption of a product that excludes one of the case's is refused", func(t *testing.T) {
		h := NewHold(t, s, "C-5", "personal_loan", t0)
		c := openCase(t, cs, "C-5", t0.Add(time.Second), "credit_card")
		_, _, err := TokenRedemption(s, h, "loan-service", t0.Add(2*time.Second))
		wantCaseOpen(t, err, c)
	})

	t.Run("an OTP redemption is refused before the code is looked at, the hold kept", func(t *testing.T) {
		h := NewHold(t, s, "C-4", "personal_loan", t0)
		c := openCase(t, cs, "C-4", t0.Add(time.Second), "credit_card", "personal_loan")
		now := t0.Add(40 * time.Second)
		code, _, err := tokens.OTPCode(h.Secret, now)
		if err != nil {
			t.Fatal(err)
		}
		// More wrong codes than burn a hold: none is counted.
		for range 6 {
			_, _, err := OTPRedemption(s, "C-4", "personal_loan", WrongCode(t, h.Secret, now), "loan-service", now)
			wantCaseOpen(t, err, c)
		}
		_, _, err = OTPRedemption(s, "C-4", "personal_loan", code, "loan-service", now)
		wantCaseOpen(t, err, c)
		wantHold(t, s, "C-4", h.ID, now)
		resolveCase(t, cs, "C-4", now)
		if g, _, err := OTPRedemption(s, "C-4", "personal_loan", code, "loan-service", now); err != nil || g.CheckID != h.ID {
			t.Fatalf("redemption after the case was resolved = %+v, %v", g, err)
		}
	})
}
