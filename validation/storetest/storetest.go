// Package storetest is the contract suite every validation.Store runs: the
// store-agnostic behaviour of a check's life (hold, redeem by token and by
// OTP, cancel, expiry, release, import, idempotency, fences, refusals), one
// exported function per contract test, so that each store runs them under
// its own test names and backends (redisstore on real Redis, miniredis and
// a cluster; inmem in memory). Tests of one store's mechanics (scripts,
// commands, WAIT, key layout) stay with that store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

// Backend is one Store under the suite.
type Backend struct {
	Store validation.Store
	// Expire makes the customer's live hold run out on the store's own
	// clock: real Redis waits for the TTL, miniredis fast-forwards. A store
	// that decides expiry by the request's Now (inmem) needs nothing: the
	// suite passes a Now at or after the hold's ExpiresAt once Expire
	// returns. nil means nothing to do.
	Expire func(tb testing.TB, customer string)
}

func (b Backend) expire(tb testing.TB, customer string) {
	tb.Helper()
	if b.Expire != nil {
		b.Expire(tb, customer)
	}
}

// Tests are the contract tests by name (the name without "TestContract"
// that redisstore's tests carry), in the order Run runs them.
var Tests = []struct {
	Name string
	Test func(t *testing.T, b Backend)
}{
	{"Check", Check}, {"RedeemToken", RedeemToken}, {"RefusalListsEveryFailedRule", RefusalListsEveryFailedRule},
	{"RedeemOTP", RedeemOTP}, {"OTPLockout", OTPLockout}, {"Cancel", Cancel}, {"ReleaseAndImport", ReleaseAndImport},
	{"RedeemReappliesThePolicy", RedeemReappliesThePolicy}, {"Max", Max}, {"Idempotency", Idempotency},
	{"AuditAndFence", AuditAndFence}, {"ReleaseByCheck", ReleaseByCheck}, {"FenceNeverDecreases", FenceNeverDecreases},
	{"StaleToken", StaleToken}, {"StaleCancel", StaleCancel}, {"ReplayOfAnEndedCheck", ReplayOfAnEndedCheck},
	{"ExpirySettledByCheck", ExpirySettledByCheck}, {"RedeemOtherProduct", RedeemOtherProduct},
	{"ReleaseMostRecent", ReleaseMostRecent}, {"HoldExpires", HoldExpires}, {"BlockLifecycle", BlockLifecycle},
	{"OTPLimitAcrossHolds", OTPLimitAcrossHolds}, {"RedemptionSemantics", RedemptionSemantics}, {"Block", Block},
	{"BlockUntil", BlockUntil}, {"Rating", Rating}, {"RatingBoundary", RatingBoundary},
	{"EligibilityMatchesCheck", EligibilityMatchesCheck}, {"Abandon", Abandon},
	{"CaseHoldsTheLine", CaseHoldsTheLine}, {"FamilyLimit", FamilyLimit}, {"CoolingOff", CoolingOff},
	{"PolicyVersion", PolicyVersion},
}

// Run runs every contract test as a parallel subtest, each on a fresh
// backend from newBackend.
func Run(t *testing.T, newBackend func(tb testing.TB) Backend) {
	for _, tc := range Tests {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			tc.Test(t, newBackend(t))
		})
	}
}

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

var policy = validation.DefaultPolicy()

// DefaultRule returns the default policy's rule of a product (a test bug panics).
func DefaultRule(_ testing.TB, product string) validation.Rule {
	r, ok := policy.Rule(product)
	if !ok {
		panic("no rule for " + product)
	}
	return r
}

// LooseRule returns the rule of a product in the default policy without
// its exclusive groups: the rule an import takes to put a ledger that
// breaks the default policy in place.
func LooseRule(tb testing.TB, product string) validation.Rule {
	return RuleOf(tb, &validation.Policy{Products: policy.Products}, product)
}

// RuleOf validates (and so compiles) the policy and returns the rule of
// product in the version in force at the suite's t0, failing tb
// otherwise. Each call must have a policy of its own: Validate writes it.
func RuleOf(tb testing.TB, p *validation.Policy, product string) validation.Rule {
	tb.Helper()
	if err := p.Validate(nil); err != nil {
		tb.Fatalf("policy: %v", err)
	}
	r, ok := p.At(t0).Rule(product)
	if !ok {
		tb.Fatalf("policy has no product %q", product)
	}
	return r
}

// WithMax returns the rule with its product limit (how many of the
// product a customer may hold) set to max.
func WithMax(r validation.Rule, max int) validation.Rule {
	r.Limits = slices.Clone(r.Limits)
	for i, l := range r.Limits {
		if l.Kind == validation.LimitProduct {
			r.Limits[i].Max = max
		}
	}
	return r
}

// NewHold places a hold for customer on product at now, failing tb otherwise.
func NewHold(tb testing.TB, s validation.Store, customer, product string, now time.Time) validation.Check {
	tb.Helper()
	c, _, err := s.Hold(context.Background(), NewHoldRequest(tb, customer, product, now))
	if err != nil {
		tb.Fatalf("Hold(%s, %s): %v", customer, product, err)
	}
	return c
}

// NewHoldRequest is the hold request the suite's checks send: the
// default policy's rule, a fresh check id, a fixed secret.
func NewHoldRequest(tb testing.TB, customer, product string, now time.Time) validation.HoldRequest {
	tb.Helper()
	return validation.HoldRequest{
		Rule: DefaultRule(tb, product), CustomerID: customer, CheckID: NewCheckID(tb, customer),
		Secret: []byte("0123456789abcdefghij"), Actor: "branch-portal", AgentID: "ana", Now: now,
		IdempotencyTTL: time.Hour,
	}
}

// TokenRedemption redeems check c by its token as actor.
func TokenRedemption(s validation.Store, c validation.Check, actor string, now time.Time) (validation.Grant, bool, error) {
	return s.Redeem(context.Background(), validation.RedeemRequest{
		Rule: DefaultRule(nil, c.Product), CustomerID: c.CustomerID, CheckID: c.ID, Actor: actor, Now: now, MaxAttempts: 5,
	})
}

// OTPRedemption redeems the customer's live hold of product by code as actor.
func OTPRedemption(s validation.Store, customer, product, code, actor string, now time.Time) (validation.Grant, bool, error) {
	return s.Redeem(context.Background(), validation.RedeemRequest{
		Rule: DefaultRule(nil, product), CustomerID: customer, Code: code, Actor: actor, Now: now, MaxAttempts: 5,
	})
}

// WantReason fails tb unless err is a validation.Error with reason want.
func WantReason(tb testing.TB, err error, want validation.Reason) *validation.Error {
	tb.Helper()
	var e *validation.Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v, want reason %s", err, want)
	}
	if e.Reason != want {
		tb.Fatalf("reason = %s (%v), want %s", e.Reason, err, want)
	}
	return e
}

// WantError fails unless err is want as package validation words it: the
// same reason, sentence and facts, so that every Store answers alike.
func WantError(tb testing.TB, err error, want *validation.Error) {
	tb.Helper()
	e := WantReason(tb, err, want.Reason)
	if e.Detail != want.Detail {
		tb.Fatalf("detail = %q, want %q", e.Detail, want.Detail)
	}
	if (e.AttemptsLeft == nil) != (want.AttemptsLeft == nil) || e.AttemptsLeft != nil && *e.AttemptsLeft != *want.AttemptsLeft {
		tb.Fatalf("attempts left = %v, want %v", e.AttemptsLeft, want.AttemptsLeft)
	}
}

// NewCheckID returns a fresh check id of customer.
func NewCheckID(tb testing.TB, customer string) string {
	tb.Helper()
	id, err := validation.NewCheckID(customer)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// WrongCode returns a well-formed code that is not valid at now.
func WrongCode(tb testing.TB, secret []byte, now time.Time) string {
	tb.Helper()
	for i := 0; i < 1000; i++ {
		code := fmt.Sprintf("%06d", (123456+i*7919)%1000000)
		if !tokens.OTPValid(secret, code, now) {
			return code
		}
	}
	tb.Fatal("no wrong code found")
	return ""
}

// cancel ends a live hold, failing tb otherwise.
func cancel(tb testing.TB, s validation.Store, c validation.Check, now time.Time) {
	tb.Helper()
	if _, err := s.Cancel(context.Background(), validation.CancelRequest{CustomerID: c.CustomerID, CheckID: c.ID, Actor: "branch-portal", Now: now}); err != nil {
		tb.Fatalf("Cancel(%s): %v", c.ID, err)
	}
}

// wantHold fails tb unless the customer's live hold is check id.
func wantHold(tb testing.TB, s validation.Store, customer, id string, now time.Time) {
	tb.Helper()
	cust, err := s.Customer(context.Background(), customer, now)
	if err != nil {
		tb.Fatal(err)
	}
	if cust.Hold == nil {
		tb.Fatalf("customer %s has no live hold, want %s (grants %+v)", customer, id, cust.Grants)
	}
	if got, want := cust.Hold.ID, id; got != want {
		tb.Fatalf("live hold = %s, want %s", got, want)
	}
}
