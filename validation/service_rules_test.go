package validation_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/inmem"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// versionedPolicy has two versions: v1, in force at svcT0, has no rule
// but the products' max; v2, from two hours later, adds a family limit
// and a cooling-off period.
const versionedPolicy = `versions:
  - version: v1
    effective_from: 2026-01-01T00:00:00Z
    products: &products
      credit_card:   { redeemers: [card-service] }
      store_card:    { redeemers: [card-service] }
      overdraft:     { redeemers: [card-service] }
      personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
  - version: v2
    effective_from: 2026-11-29T12:00:00Z
    products: *products
    limits:
      - { name: unsecured_credit, title: unsecured credit products, max: 2, products: [credit_card, store_card, overdraft] }
    cooling_off:
      - { name: loan_after_card, after: [credit_card], products: [personal_loan], period: 90d }
`

// v2From is when versionedPolicy's v2 comes into force.
var v2From = svcT0.Add(2 * time.Hour)

func newVersionedEnv(tb testing.TB) *env {
	tb.Helper()
	p, err := policyfile.Parse([]byte(versionedPolicy))
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{store: inmem.New(inmem.Options{}), clock: &clock{now: svcT0}}
	e.svc = &validation.Service{Store: e.store, Policy: p, Now: e.clock.Now}
	return e
}

// TestServiceRecordsTheVersionInForce: a check is decided, and recorded,
// under the version in force at its time, its grant under the one in
// force when it is redeemed; a refusal says its version, and so does a
// dry run.
func TestServiceRecordsTheVersionInForce(t *testing.T) {
	ctx := context.Background()
	e := newVersionedEnv(t)
	e.clock.now = v2From.Add(-2 * time.Minute)
	c := e.check(t, "C-1", "credit_card")
	if got, want := c.PolicyVersion, "v1"; got != want {
		t.Fatalf("check version = %q, want %q", got, want)
	}
	e.clock.now = v2From.Add(time.Minute)
	g, _, err := e.redeem(t, cards, c)
	if err != nil || g.PolicyVersion != "v2" {
		t.Fatalf("grant = %+v, %v; want it redeemed under v2", g, err)
	}
	_, _, err = e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"})
	if e := storetest.WantReason(t, err, validation.ReasonAlreadyHoldsProduct); e.PolicyVersion != "v2" {
		t.Fatalf("refusal version = %q, want v2", e.PolicyVersion)
	}
	elig, err := e.svc.Eligibility(ctx, "C-2", "credit_card")
	if err != nil || elig.PolicyVersion != "v2" {
		t.Fatalf("eligibility = %+v, %v; want version v2", elig, err)
	}
}

// TestServiceFamilyLimit: a family limit applies from the version that
// writes it, and its refusal reads as a sentence naming what the customer
// holds (a check in progress with its expiry) and the rule.
func TestServiceFamilyLimit(t *testing.T) {
	ctx := context.Background()
	check := func(e *env, customer, product string) error {
		_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: customer, Product: product})
		return err
	}

	t.Run("under v1 a third product is allowed", func(t *testing.T) {
		e := newVersionedEnv(t)
		e.grant(t, cards, "C-1", "credit_card")
		e.grant(t, cards, "C-1", "store_card")
		e.check(t, "C-1", "overdraft")
	})
	t.Run("under v2 it is refused, in words", func(t *testing.T) {
		e := newVersionedEnv(t)
		e.clock.now = v2From
		e.grant(t, cards, "C-1", "credit_card")
		e.clock.advance(24 * time.Hour)
		e.grant(t, cards, "C-1", "store_card")
		err := check(e, "C-1", "overdraft")
		got := storetest.WantReason(t, err, validation.ReasonFamilyLimit)
		if want := "Customer holds 2 of 2 unsecured credit products: Credit card since 29 Nov 2026 and Store card since 30 Nov 2026 (rule unsecured_credit)."; got.Detail != want {
			t.Fatalf("detail = %q,\nwant     %q", got.Detail, want)
		}
		elig, err := e.svc.Eligibility(ctx, "C-1", "overdraft")
		if err != nil || elig.Allowed || verdict(elig, validation.RuleFamilyLimit) != validation.VerdictFail {
			t.Fatalf("eligibility = %+v, %v; want family_limit failed", elig, err)
		}
	})
	t.Run("a check in progress counts, with its expiry", func(t *testing.T) {
		e := newVersionedEnv(t)
		e.clock.now = v2From
		e.grant(t, cards, "C-1", "credit_card")
		e.clock.advance(time.Minute)
		e.check(t, "C-1", "store_card")
		err := check(e, "C-1", "overdraft")
		got := storetest.WantReason(t, err, validation.ReasonFamilyLimit)
		if want := "Customer holds 2 of 2 unsecured credit products: Credit card since 29 Nov 2026 and Store card (a check in progress until 12:06 UTC) (rule unsecured_credit)."; got.Detail != want {
			t.Fatalf("detail = %q,\nwant     %q", got.Detail, want)
		}
		if len(got.Violations) != 2 || got.Violations[1].Reason != validation.ReasonHoldExists {
			t.Fatalf("violations = %+v, want family_limit then hold_exists", got.Violations)
		}
	})
}

// TestServiceCoolingOff: a release through the Service keeps the end as
// long as the policy needs, so a loan within 90 days after the card ended
// is refused in words, and allowed from the 90th day.
func TestServiceCoolingOff(t *testing.T) {
	ctx := context.Background()
	e := newVersionedEnv(t)
	e.clock.now = v2From
	e.grant(t, cards, "C-1", "credit_card")
	e.clock.advance(time.Hour)
	if _, err := e.svc.Release(ctx, cards, "C-1", "credit_card", ""); err != nil {
		t.Fatal(err)
	}
	ended := e.clock.now
	e.clock.now = ended.Add(89 * day)
	_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "personal_loan"})
	got := storetest.WantReason(t, err, validation.ReasonCoolingOff)
	if want := "Customer's Credit card ended on 29 Nov 2026: rule loan_after_card asks 90 days before this product, until 27 Feb 2027."; got.Detail != want {
		t.Fatalf("detail = %q,\nwant     %q", got.Detail, want)
	}
	if v := got.Violations[0]; v.Rule != "loan_after_card" || !v.Since.Equal(ended) || !v.Until.Equal(ended.Add(90*day)) {
		t.Fatalf("violation = %+v", v)
	}
	e.clock.now = ended.Add(90 * day)
	e.check(t, "C-1", "personal_loan")
}

// verdict is the verdict of rule in an eligibility.
func verdict(e validation.Eligibility, rule string) string {
	for _, r := range e.Rules {
		if r.Rule == rule {
			return r.Verdict
		}
	}
	return ""
}
