package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// Contract tests of the rules written as data (issue #22): family limits,
// cooling-off periods and the policy version every decision records.

// familyPolicy allows at most two of the unsecured credit products.
func familyPolicy() *validation.Policy {
	return &validation.Policy{
		Products: map[string]validation.Product{
			"credit_card": {Redeemers: []string{"card-service"}},
			"store_card":  {Redeemers: []string{"card-service"}},
			"overdraft":   {Redeemers: []string{"card-service"}},
		},
		Limits: []validation.FamilyLimit{{Name: "unsecured_credit", Title: "unsecured credit products", Max: 2,
			Products: []string{"credit_card", "store_card", "overdraft"}}},
	}
}

// coolingPolicy refuses a personal loan within 90 days after a credit
// card ended; the two are not exclusive.
func coolingPolicy() *validation.Policy {
	return &validation.Policy{
		Products: map[string]validation.Product{
			"credit_card":   {Redeemers: []string{"card-service"}},
			"personal_loan": {Redeemers: []string{"loan-service"}},
		},
		CoolingOff: []validation.CoolingOffRule{{Name: "loan_after_card", After: []string{"credit_card"},
			Products: []string{"personal_loan"}, Period: validation.Period(90 * 24 * time.Hour)}},
	}
}

// holdWith places a hold of r.Product for customer at now, failing tb
// otherwise.
func holdWith(tb testing.TB, s validation.Store, r validation.Rule, customer string, now time.Time) validation.Check {
	tb.Helper()
	req := NewHoldRequest(tb, customer, "credit_card", now)
	req.Rule = r
	c, _, err := s.Hold(context.Background(), req)
	if err != nil {
		tb.Fatalf("Hold(%s, %s): %v", customer, r.Product, err)
	}
	return c
}

// redeemWith redeems check c by its token under rule r.
func redeemWith(s validation.Store, r validation.Rule, c validation.Check, now time.Time) (validation.Grant, bool, error) {
	return s.Redeem(context.Background(), validation.RedeemRequest{
		Rule: r, CustomerID: c.CustomerID, CheckID: c.ID, Actor: "card-service", Now: now, MaxAttempts: 5,
	})
}

// grantWith places and redeems a hold of r.Product at now: a grant.
func grantWith(tb testing.TB, s validation.Store, r validation.Rule, customer string, now time.Time) validation.Grant {
	tb.Helper()
	g, _, err := redeemWith(s, r, holdWith(tb, s, r, customer, now), now)
	if err != nil {
		tb.Fatalf("redeem %s of %s: %v", r.Product, customer, err)
	}
	return g
}

// release ends the customer's grant of product at now, remembering the
// end for keep.
func release(tb testing.TB, s validation.Store, customer, product string, now time.Time, keep time.Duration) {
	tb.Helper()
	if _, err := s.Release(context.Background(), validation.ReleaseRequest{CustomerID: customer, Product: product,
		Actor: "card-service", Now: now, KeepEnded: keep}); err != nil {
		tb.Fatalf("Release(%s, %s): %v", customer, product, err)
	}
}

// importWith imports a grant of r.Product granted at grantedAt.
func importWith(tb testing.TB, s validation.Store, r validation.Rule, customer string, grantedAt, now time.Time) (validation.Grant, error) {
	tb.Helper()
	id, err := validation.NewImportID(customer)
	if err != nil {
		tb.Fatal(err)
	}
	return s.Import(context.Background(), validation.ImportRequest{Rule: r, CustomerID: customer,
		CheckID: id, Actor: "ops", GrantedAt: grantedAt, Now: now})
}

// dryRun is the store's Eligibility of r.Product as an error: nil when
// the customer may take it, else a refusal with its violations.
func dryRun(tb testing.TB, s validation.Store, r validation.Rule, customer string, now time.Time) error {
	tb.Helper()
	res, err := s.Eligibility(context.Background(), validation.EligibilityRequest{Rule: r, CustomerID: customer, Now: now})
	if err != nil {
		tb.Fatalf("Eligibility(%s, %s): %v", customer, r.Product, err)
	}
	if len(res.Violations) == 0 {
		return nil
	}
	return &validation.Error{Reason: res.Violations[0].Reason, Violations: res.Violations}
}

// held is a grant as a family limit counts it.
func held(g validation.Grant) validation.Holding {
	return validation.Holding{Product: g.Product, CheckID: g.CheckID, Since: g.GrantedAt}
}

// wantViolation fails tb unless err is a refusal whose violations have
// the reasons want and the one of reason want[0] equals v.
func wantViolation(tb testing.TB, err error, v validation.Violation, want ...validation.Reason) {
	tb.Helper()
	e := WantReason(tb, err, want[0])
	if got := reasonsOf(e.Violations); !slices.Equal(got, want) {
		tb.Fatalf("violations = %v, want %v", got, want)
	}
	sameViolation(tb, e.Violations[0], v)
}

// sameViolation fails tb unless got has v's facts (its Detail aside,
// which the Service words).
func sameViolation(tb testing.TB, got, v validation.Violation) {
	tb.Helper()
	got.Detail = ""
	ok := got.Reason == v.Reason && got.Rule == v.Rule && got.Limit == v.Limit && got.Note == v.Note &&
		got.Product == v.Product && got.Since.Equal(v.Since) && got.Until.Equal(v.Until) &&
		slices.EqualFunc(got.Held, v.Held, func(a, b validation.Holding) bool {
			return a.Product == b.Product && a.CheckID == b.CheckID && a.Since.Equal(b.Since) && a.Until.Equal(b.Until)
		})
	if !ok {
		tb.Fatalf("violation = %+v,\nwant        %+v", got, v)
	}
}

// FamilyLimit: a family limit of two refuses a third product of the family
// (family_limit, naming the rule, the limit and what counts against it,
// oldest first, the live hold with its expiry); an import counts the live
// hold; a redemption is refused when the ledger changed while its hold
// lived; a release makes room again.
func FamilyLimit(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	rule := func(product string) validation.Rule { return RuleOf(t, familyPolicy(), product) }
	family := func(h ...validation.Holding) validation.Violation {
		return validation.Violation{Reason: validation.ReasonFamilyLimit, Rule: "unsecured_credit", Limit: 2,
			Note: "unsecured credit products", Held: h}
	}

	t.Run("a third product of the family is refused until one is released", func(t *testing.T) {
		card := grantWith(t, s, rule("credit_card"), "F-1", t0)
		store := grantWith(t, s, rule("store_card"), "F-1", t0.Add(time.Minute))
		now := t0.Add(2 * time.Minute)
		req := NewHoldRequest(t, "F-1", "credit_card", now)
		req.Rule = rule("overdraft")
		_, _, err := s.Hold(ctx, req)
		wantViolation(t, err, family(held(card), held(store)), validation.ReasonFamilyLimit)
		wantViolation(t, dryRun(t, s, rule("overdraft"), "F-1", now), family(held(card), held(store)), validation.ReasonFamilyLimit)
		evs, err := s.Audit(ctx, "F-1", 1, now, validation.EventRefused)
		if err != nil || len(evs) != 1 || evs[0].Reason != validation.ReasonFamilyLimit || evs[0].Product != "overdraft" {
			t.Fatalf("refusal audited = %+v, %v; want family_limit of the overdraft", evs, err)
		}

		release(t, s, "F-1", "store_card", t0.Add(3*time.Minute), validation.MinKeepEnded)
		holdWith(t, s, rule("overdraft"), "F-1", t0.Add(4*time.Minute))
	})

	t.Run("the live hold counts, with its expiry, in a check and in an import", func(t *testing.T) {
		card := grantWith(t, s, rule("credit_card"), "F-2", t0)
		h := holdWith(t, s, rule("store_card"), "F-2", t0.Add(time.Minute))
		live := validation.Holding{Product: "store_card", CheckID: h.ID, Since: h.CreatedAt, Until: h.ExpiresAt}
		now := t0.Add(2 * time.Minute)
		wantViolation(t, dryRun(t, s, rule("overdraft"), "F-2", now), family(held(card), live),
			validation.ReasonFamilyLimit, validation.ReasonHoldExists)
		_, err := importWith(t, s, rule("overdraft"), "F-2", now, now)
		wantViolation(t, err, family(held(card), live), validation.ReasonFamilyLimit)
		if got := grantsOf(t, s, "F-2"); len(got) != 1 {
			t.Fatalf("grants = %v after a refused import, want the card's only", got)
		}
	})

	t.Run("a redemption is refused when the ledger changed while its hold lived", func(t *testing.T) {
		card := grantWith(t, s, rule("credit_card"), "F-3", t0)
		h := holdWith(t, s, rule("store_card"), "F-3", t0.Add(time.Minute))
		// A product system reports an overdraft granted long ago, imported
		// under a rule without the family limit, as a reconciliation does.
		loose := RuleOf(t, &validation.Policy{Products: familyPolicy().Products}, "overdraft")
		od, err := importWith(t, s, loose, "F-3", t0.Add(-24*time.Hour), t0.Add(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		now := t0.Add(3 * time.Minute)
		_, _, err = redeemWith(s, rule("store_card"), h, now)
		wantViolation(t, err, family(held(od), held(card)), validation.ReasonFamilyLimit)
		got, err := s.Check(ctx, "F-3", h.ID, now)
		if err != nil || got.Status != validation.StatusCancelled || got.EndReason != string(validation.ReasonFamilyLimit) {
			t.Fatalf("check = %+v, %v; want cancelled for family_limit", got, err)
		}
		if got := grantsOf(t, s, "F-3"); len(got) != 2 || slices.Contains(got, h.ID) {
			t.Fatalf("grants = %v, want the card and the overdraft only", got)
		}
	})
}

// CoolingOff: no personal loan within 90 days after a credit card ended:
// refused on the 89th day (cooling_off, naming the card, when it ended and
// when the period ends), allowed from the 90th; applied at redemption too
// (the hold is cancelled); an end is kept at least MinKeepEnded when the
// release says not how long. (How soon a store forgets is not pinned: it
// keeps an end at least KeepEnded, by its own clock, and Policy.KeepEnded
// is never shorter than a period.)
func CoolingOff(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	const day = 24 * time.Hour
	rule := func(product string) validation.Rule { return RuleOf(t, coolingPolicy(), product) }
	cooling := func(ended time.Time) validation.Violation {
		return validation.Violation{Reason: validation.ReasonCoolingOff, Rule: "loan_after_card", Product: "credit_card",
			Since: ended, Until: ended.Add(90 * day)}
	}
	loanHold := func(customer string, now time.Time) error {
		req := NewHoldRequest(t, customer, "personal_loan", now)
		req.Rule = rule("personal_loan")
		_, _, err := s.Hold(ctx, req)
		return err
	}

	t.Run("refused within the period, allowed from its end", func(t *testing.T) {
		grantWith(t, s, rule("credit_card"), "K-1", t0)
		ended := t0.Add(time.Hour)
		release(t, s, "K-1", "credit_card", ended, 180*day)
		wantViolation(t, loanHold("K-1", ended.Add(89*day)), cooling(ended), validation.ReasonCoolingOff)
		wantViolation(t, dryRun(t, s, rule("personal_loan"), "K-1", ended.Add(89*day)), cooling(ended), validation.ReasonCoolingOff)
		if err := loanHold("K-1", ended.Add(90*day)); err != nil {
			t.Fatalf("a loan 90 days after the card ended: %v", err)
		}
	})

	t.Run("a redemption is refused when the card ended while the hold lived", func(t *testing.T) {
		grantWith(t, s, rule("credit_card"), "K-2", t0)
		h := holdWith(t, s, rule("personal_loan"), "K-2", t0.Add(time.Minute))
		ended := t0.Add(2 * time.Minute)
		release(t, s, "K-2", "credit_card", ended, 180*day)
		now := t0.Add(3 * time.Minute)
		_, _, err := redeemWith(s, rule("personal_loan"), h, now)
		wantViolation(t, err, cooling(ended), validation.ReasonCoolingOff)
		got, err := s.Check(ctx, "K-2", h.ID, now)
		if err != nil || got.Status != validation.StatusCancelled || got.EndReason != string(validation.ReasonCoolingOff) {
			t.Fatalf("check = %+v, %v; want cancelled for cooling_off", got, err)
		}
		if got := grantsOf(t, s, "K-2"); len(got) != 0 {
			t.Fatalf("grants = %v, want none", got)
		}
		evs, err := s.Audit(ctx, "K-2", 1, now, validation.EventCancelled)
		if err != nil || len(evs) != 1 || evs[0].Reason != validation.ReasonCoolingOff || evs[0].CheckID != h.ID {
			t.Fatalf("cancellation audited = %+v, %v; want the hold cancelled for cooling_off", evs, err)
		}
	})

	t.Run("a release that says not how long keeps the end at least MinKeepEnded", func(t *testing.T) {
		grantWith(t, s, rule("credit_card"), "K-4", t0)
		ended := t0.Add(time.Hour)
		release(t, s, "K-4", "credit_card", ended, 0)
		wantViolation(t, loanHold("K-4", ended.Add(validation.MinKeepEnded-day)), cooling(ended), validation.ReasonCoolingOff)
	})
}

// PolicyVersion: a check records the version of the rule it was decided
// under, a grant the version of the rule that redeemed (or imported) it,
// and the audit events of decisions carry the version of theirs.
func PolicyVersion(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	versioned := func(product, version string) validation.Rule {
		r := DefaultRule(t, product)
		r.Version = version
		return r
	}
	wantVersions := func(tb testing.TB, customer string, now time.Time, want map[validation.EventType]string) {
		tb.Helper()
		evs, err := s.Audit(ctx, customer, 50, now)
		if err != nil {
			tb.Fatal(err)
		}
		got := map[validation.EventType]string{}
		for _, ev := range evs {
			if _, ok := want[ev.Type]; ok {
				got[ev.Type] = ev.PolicyVersion
			}
		}
		for typ, v := range want {
			if got[typ] != v {
				tb.Fatalf("%s event version = %q, want %q (audit %+v)", typ, got[typ], v, evs)
			}
		}
	}

	t.Run("a check and its grant", func(t *testing.T) {
		c := holdWith(t, s, versioned("credit_card", "v1"), "V-1", t0)
		if got, want := c.PolicyVersion, "v1"; got != want {
			t.Fatalf("check version = %q, want %q", got, want)
		}
		if got, err := s.Check(ctx, "V-1", c.ID, t0); err != nil || got.PolicyVersion != "v1" {
			t.Fatalf("stored check = %+v, %v; want version v1", got, err)
		}
		wantVersions(t, "V-1", t0, map[validation.EventType]string{validation.EventChecked: "v1"})
		g, _, err := redeemWith(s, versioned("credit_card", "v2"), c, t0.Add(time.Minute))
		if err != nil || g.PolicyVersion != "v2" {
			t.Fatalf("grant = %+v, %v; want version v2", g, err)
		}
		cust, err := s.Customer(ctx, "V-1", t0.Add(time.Minute))
		if err != nil || len(cust.Grants) != 1 || cust.Grants[0].PolicyVersion != "v2" {
			t.Fatalf("customer = %+v, %v; want the grant of version v2", cust, err)
		}
		if got, err := s.Check(ctx, "V-1", c.ID, t0.Add(time.Minute)); err != nil || got.PolicyVersion != "v1" {
			t.Fatalf("redeemed check = %+v, %v; want it still decided under v1", got, err)
		}
		_, _, err = s.Hold(ctx, validation.HoldRequest{Rule: versioned("personal_loan", "v3"), CustomerID: "V-1",
			CheckID: NewCheckID(t, "V-1"), Actor: "branch-portal", Now: t0.Add(2 * time.Minute)})
		WantReason(t, err, validation.ReasonConflictingProduct)
		wantVersions(t, "V-1", t0.Add(2*time.Minute), map[validation.EventType]string{
			validation.EventChecked: "v1", validation.EventRedeemed: "v2", validation.EventRefused: "v3"})
	})

	t.Run("an import", func(t *testing.T) {
		g, err := importWith(t, s, versioned("personal_loan", "v4"), "V-2", t0, t0)
		if err != nil || g.PolicyVersion != "v4" {
			t.Fatalf("import = %+v, %v; want version v4", g, err)
		}
		wantVersions(t, "V-2", t0, map[validation.EventType]string{validation.EventImported: "v4"})
	})

	t.Run("a hold cancelled by the rules at redemption", func(t *testing.T) {
		c := holdWith(t, s, versioned("credit_card", "v1"), "V-3", t0)
		if _, err := importWith(t, s, LooseRule(t, "personal_loan"), "V-3", t0, t0); err != nil {
			t.Fatal(err)
		}
		_, _, err := redeemWith(s, versioned("credit_card", "v5"), c, t0.Add(time.Minute))
		WantReason(t, err, validation.ReasonConflictingProduct)
		wantVersions(t, "V-3", t0.Add(time.Minute), map[validation.EventType]string{
			validation.EventChecked: "v1", validation.EventCancelled: "v5"})
	})
}
