package validation_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/inmem"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// The Service's own tests, on the in-memory Store: no Redis, and time is
// a clock the test moves.

var svcT0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// testPolicy is the default policy plus a product with a rating rule.
const testPolicy = `products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service] }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
  mortgage:      { hold_ttl: 5m,  redeemers: [loan-service], min_rating: 600 }
exclusive:
  - [credit_card, personal_loan]
rating:
  url: http://bureau.test/v1/ratings/{customer_id}
`

var (
	portal = validation.Actor{ID: "branch-portal", Roles: []validation.Role{validation.RoleChecker}}
	cards  = validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}}
	loans  = validation.Actor{ID: "loan-service", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}}
)

// clock is the Service's injected time.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time                              { return c.now }
func (c *clock) advance(d time.Duration)                     { c.now = c.now.Add(d) }
func (r bureau) Rating(context.Context, string) (int, error) { return r.score, r.err }

// bureau is a RatingSource answering one score or one error.
type bureau struct {
	score int
	err   error
}

// env is one Service on a fresh in-memory store.
type env struct {
	svc    *validation.Service
	store  *inmem.Store
	clock  *clock
	bureau *bureau
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	p, err := policyfile.Parse([]byte(testPolicy))
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{store: inmem.New(inmem.Options{}), clock: &clock{now: svcT0}, bureau: &bureau{score: 700}}
	e.svc = &validation.Service{Store: e.store, Policy: p, Now: e.clock.Now, Ratings: e.bureau}
	return e
}

func (e *env) check(tb testing.TB, customer, product string) validation.Check {
	tb.Helper()
	c, _, err := e.svc.Check(context.Background(), portal, validation.CheckInput{CustomerID: customer, Product: product})
	if err != nil {
		tb.Fatalf("Check(%s, %s): %v", customer, product, err)
	}
	return c
}

// proof is the approval token's proof of a check portal placed: the secret
// the token would carry.
func (e *env) proof(tb testing.TB, c validation.Check) validation.TokenProof {
	tb.Helper()
	got, err := e.svc.GetCheck(context.Background(), portal, c.ID)
	if err != nil || got.Secret == nil {
		tb.Fatalf("GetCheck(%s) = %+v, %v; want its secret", c.ID, got, err)
	}
	return validation.TokenProof{Secret: validation.TokenSecret(got.Secret)}
}

func (e *env) redeem(tb testing.TB, by validation.Actor, c validation.Check) (validation.Grant, bool, error) {
	tb.Helper()
	return e.svc.RedeemToken(context.Background(), by, c.CustomerID, c.Product, c.ID, e.proof(tb, c))
}

func (e *env) grant(tb testing.TB, by validation.Actor, customer, product string) validation.Grant {
	tb.Helper()
	g, _, err := e.redeem(tb, by, e.check(tb, customer, product))
	if err != nil {
		tb.Fatalf("redeem %s for %s: %v", product, customer, err)
	}
	return g
}

// code returns the check's current OTP, as the branch UI shows it.
func (e *env) code(tb testing.TB, c validation.Check) string {
	tb.Helper()
	got, err := e.svc.GetCheck(context.Background(), portal, c.ID)
	if err != nil {
		tb.Fatal(err)
	}
	code, _, err := tokens.OTPCode(got.Secret, e.clock.now)
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// wrong returns a well-formed code that is not the check's now.
func (e *env) wrong(tb testing.TB, c validation.Check) string {
	tb.Helper()
	right := e.code(tb, c)
	for _, w := range []string{"000000", "111111", "222222"} {
		got, _ := e.svc.GetCheck(context.Background(), portal, c.ID)
		if w != right && !tokens.OTPValid(got.Secret, w, e.clock.now) {
			return w
		}
	}
	tb.Fatal("no wrong code")
	return ""
}

// TestServiceRefusals drives the Service into every reason it returns
// with a Store that works (unauthorized is web's; unavailable, not_durable,
// store_full and internal are a failing store's), one fresh customer base
// per case.
func TestServiceRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		want validation.Reason
		do   func(t *testing.T, e *env) error
	}{
		{"unknown product", validation.ReasonInvalidRequest, func(t *testing.T, e *env) error {
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "yacht"})
			return err
		}},
		{"malformed customer id", validation.ReasonInvalidRequest, func(t *testing.T, e *env) error {
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "{C-1}", Product: "credit_card"})
			return err
		}},
		{"malformed code costs no attempt", validation.ReasonInvalidRequest, func(t *testing.T, e *env) error {
			e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.RedeemOTP(ctx, cards, "C-1", "credit_card", "12345a")
			return err
		}},
		{"import dated in the future", validation.ReasonInvalidRequest, func(t *testing.T, e *env) error {
			_, err := e.svc.Import(ctx, admin, "C-1", "credit_card", svcT0.Add(time.Hour))
			return err
		}},
		{"block without a reason", validation.ReasonInvalidRequest, func(t *testing.T, e *env) error {
			_, err := e.svc.Block(ctx, admin, "C-1", "", time.Time{})
			return err
		}},
		{"import by a non-admin", validation.ReasonForbidden, func(t *testing.T, e *env) error {
			_, err := e.svc.Import(ctx, cards, "C-1", "credit_card", time.Time{})
			return err
		}},
		{"block by a non-admin", validation.ReasonForbidden, func(t *testing.T, e *env) error {
			_, err := e.svc.Block(ctx, portal, "C-1", "fraud", time.Time{})
			return err
		}},
		{"cancel of another client's check", validation.ReasonForbidden, func(t *testing.T, e *env) error {
			_, err := e.svc.Cancel(ctx, loans, e.check(t, "C-1", "credit_card").ID)
			return err
		}},
		{"redeem by a non-redeemer", validation.ReasonNotRedeemer, func(t *testing.T, e *env) error {
			_, _, err := e.redeem(t, loans, e.check(t, "C-1", "credit_card"))
			return err
		}},
		{"token without secret or verified signature", validation.ReasonTokenInvalid, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, validation.TokenProof{})
			return err
		}},
		{"token of another customer's check", validation.ReasonTokenInvalid, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.RedeemToken(ctx, cards, "C-2", "credit_card", c.ID, e.proof(t, c))
			return err
		}},
		{"token with the wrong secret", validation.ReasonTokenInvalid, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, validation.TokenProof{Secret: "forged"})
			return err
		}},
		{"token naming another product", validation.ReasonTokenInvalid, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.RedeemToken(ctx, loans, "C-1", "personal_loan", c.ID, e.proof(t, c))
			return err
		}},
		{"a live hold", validation.ReasonHoldExists, func(t *testing.T, e *env) error {
			e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "c-1", Product: "personal_loan"})
			return err
		}},
		{"a conflicting grant", validation.ReasonConflictingProduct, func(t *testing.T, e *env) error {
			e.grant(t, cards, "C-1", "credit_card")
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "personal_loan"})
			return err
		}},
		{"the same product held", validation.ReasonAlreadyHoldsProduct, func(t *testing.T, e *env) error {
			e.grant(t, cards, "C-1", "credit_card")
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"})
			return err
		}},
		{"import next to a conflicting grant", validation.ReasonConflictingProduct, func(t *testing.T, e *env) error {
			e.grant(t, cards, "C-1", "credit_card")
			_, err := e.svc.Import(ctx, admin, "C-1", "personal_loan", time.Time{})
			return err
		}},
		{"idempotency key with another body", validation.ReasonIdempotencyKeyReused, func(t *testing.T, e *env) error {
			in := validation.CheckInput{CustomerID: "C-1", Product: "credit_card", IdempotencyKey: "k"}
			if _, _, err := e.svc.Check(ctx, portal, in); err != nil {
				t.Fatal(err)
			}
			in.AgentID = "someone-else"
			_, _, err := e.svc.Check(ctx, portal, in)
			return err
		}},
		{"unknown check", validation.ReasonCheckNotFound, func(t *testing.T, e *env) error {
			id, _ := validation.NewCheckID("C-1")
			_, err := e.svc.GetCheck(ctx, portal, id)
			return err
		}},
		{"cancel of an ended check", validation.ReasonCheckNotHeld, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			if _, err := e.svc.Cancel(ctx, portal, c.ID); err != nil {
				t.Fatal(err)
			}
			_, err := e.svc.Cancel(ctx, portal, c.ID)
			return err
		}},
		{"redeem after the hold expired", validation.ReasonHoldExpired, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			proof := e.proof(t, c)
			e.clock.advance(5 * time.Minute)
			_, _, err := e.svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, proof)
			return err
		}},
		{"a wrong code", validation.ReasonOTPInvalid, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.RedeemOTP(ctx, cards, "C-1", "credit_card", e.wrong(t, c))
			return err
		}},
		{"the last wrong code burns the hold", validation.ReasonOTPLocked, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			wrong := e.wrong(t, c)
			for range validation.DefaultMaxOTPAttempts - 1 {
				if _, _, err := e.svc.RedeemOTP(ctx, cards, "C-1", "credit_card", wrong); !errors.Is(err, validation.ErrOTPInvalid) {
					t.Fatalf("wrong code = %v, want otp_invalid", err)
				}
			}
			_, _, err := e.svc.RedeemOTP(ctx, cards, "C-1", "credit_card", wrong)
			return err
		}},
		{"too many wrong codes across holds", validation.ReasonOTPRateLimited, func(t *testing.T, e *env) error {
			e.svc.OTPFailures = 3
			for range 3 {
				c := e.check(t, "C-1", "credit_card")
				if _, _, err := e.svc.RedeemOTP(ctx, cards, "C-1", "credit_card", e.wrong(t, c)); !errors.Is(err, validation.ErrOTPInvalid) {
					t.Fatalf("wrong code = %v, want otp_invalid", err)
				}
				if _, err := e.svc.Cancel(ctx, portal, c.ID); err != nil {
					t.Fatal(err)
				}
			}
			c := e.check(t, "C-1", "credit_card")
			_, _, err := e.svc.RedeemOTP(ctx, cards, "C-1", "credit_card", e.code(t, c))
			return err
		}},
		{"redeemed by another client", validation.ReasonAlreadyRedeemed, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			proof := e.proof(t, c)
			if _, _, err := e.svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, proof); err != nil {
				t.Fatal(err)
			}
			_, _, err := e.svc.RedeemToken(ctx, admin, "C-1", "credit_card", c.ID, proof)
			return err
		}},
		{"release without a grant", validation.ReasonGrantNotFound, func(t *testing.T, e *env) error {
			_, err := e.svc.Release(ctx, cards, "C-1", "credit_card", "")
			return err
		}},
		{"redeem replay after release", validation.ReasonGrantReleased, func(t *testing.T, e *env) error {
			c := e.check(t, "C-1", "credit_card")
			proof := e.proof(t, c)
			if _, _, err := e.svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, proof); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Release(ctx, cards, "C-1", "credit_card", c.ID); err != nil {
				t.Fatal(err)
			}
			_, _, err := e.svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, proof)
			return err
		}},
		{"unblock of a customer not blocked", validation.ReasonNotFound, func(t *testing.T, e *env) error {
			return e.svc.Unblock(ctx, admin, "C-1")
		}},
		{"a blocked customer", validation.ReasonCustomerBlocked, func(t *testing.T, e *env) error {
			if _, err := e.svc.Block(ctx, admin, "C-1", "fraud review", time.Time{}); err != nil {
				t.Fatal(err)
			}
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"})
			return err
		}},
		{"an open case", validation.ReasonCaseOpen, func(t *testing.T, e *env) error {
			kase := validation.Case{CustomerID: "C-1", Products: []string{"credit_card", "personal_loan"}, Detail: "double holding", OpenedAt: svcT0}
			if err := e.store.OpenCase(ctx, kase, svcT0); err != nil {
				t.Fatal(err)
			}
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "personal_loan"})
			return err
		}},
		{"a rating below the product's", validation.ReasonRatingTooLow, func(t *testing.T, e *env) error {
			e.bureau.score = 599
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "mortgage"})
			return err
		}},
		{"the bureau unavailable", validation.ReasonRatingUnavailable, func(t *testing.T, e *env) error {
			e.bureau.err = errors.New("timeout")
			_, _, err := e.svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "mortgage"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantReason(t, tc.do(t, newEnv(t)), tc.want)
		})
	}
}

// TestServiceLifecycle walks one customer through the whole life of its
// checks, the clock moved by the test.
func TestServiceLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	svc := e.svc

	t.Run("a check places a hold that blocks any other", func(t *testing.T) {
		c := e.check(t, "c-1", "credit_card")
		if c.CustomerID != "C-1" || c.Status != validation.StatusHeld || !c.ExpiresAt.Equal(svcT0.Add(5*time.Minute)) {
			t.Fatalf("check = %+v", c)
		}
		_, _, err := svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "personal_loan"})
		if e := storetest.WantReason(t, err, validation.ReasonHoldExists); e.Detail == "" || e.HeldProduct != "credit_card" {
			t.Fatalf("refusal = %+v, want it worded and naming the card", e)
		}
	})
	t.Run("the hold expires on the clock, and the customer is free", func(t *testing.T) {
		e.clock.advance(5 * time.Minute)
		cust, err := svc.Customer(ctx, "C-1")
		if err != nil || cust.Hold != nil {
			t.Fatalf("customer = %+v, %v; want no hold", cust, err)
		}
	})
	t.Run("a cancelled hold frees the customer", func(t *testing.T) {
		c := e.check(t, "C-1", "personal_loan")
		got, err := svc.Cancel(ctx, portal, c.ID)
		if err != nil || got.Status != validation.StatusCancelled {
			t.Fatalf("cancel = %+v, %v", got, err)
		}
	})
	var card validation.Grant
	t.Run("redeemed by token, and the retry replays", func(t *testing.T) {
		c := e.check(t, "C-1", "credit_card")
		proof := e.proof(t, c)
		e.clock.advance(time.Minute)
		g, replayed, err := svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, proof)
		if err != nil || replayed || g.CheckID != c.ID || !g.GrantedAt.Equal(e.clock.now) {
			t.Fatalf("redeem = %+v, %v, %v", g, replayed, err)
		}
		again, replayed, err := svc.RedeemToken(ctx, cards, "C-1", "credit_card", c.ID, proof)
		if err != nil || !replayed || again != g {
			t.Fatalf("retry = %+v, %v, %v; want %+v replayed", again, replayed, err, g)
		}
		card = g
	})
	t.Run("the grant excludes the loan", func(t *testing.T) {
		_, _, err := svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-1", Product: "personal_loan"})
		storetest.WantReason(t, err, validation.ReasonConflictingProduct)
		elig, err := svc.Eligibility(ctx, "C-1", "personal_loan")
		if err != nil || elig.Allowed {
			t.Fatalf("eligibility = %+v, %v; want refused", elig, err)
		}
	})
	t.Run("released, the loan is open, and redeemed by OTP", func(t *testing.T) {
		if _, err := svc.Release(ctx, cards, "C-1", "credit_card", ""); err != nil {
			t.Fatal(err)
		}
		c := e.check(t, "C-1", "personal_loan")
		e.clock.advance(20 * time.Second)
		g, replayed, err := svc.RedeemOTP(ctx, loans, "C-1", "personal_loan", e.code(t, c))
		if err != nil || replayed || g.CheckID != c.ID {
			t.Fatalf("redeem by OTP = %+v, %v, %v", g, replayed, err)
		}
	})
	t.Run("an import is refused next to the loan, accepted once it is released", func(t *testing.T) {
		_, err := svc.Import(ctx, admin, "C-1", "credit_card", card.GrantedAt)
		storetest.WantReason(t, err, validation.ReasonConflictingProduct)
		if _, err := svc.Release(ctx, loans, "C-1", "personal_loan", ""); err != nil {
			t.Fatal(err)
		}
		g, err := svc.Import(ctx, admin, "C-1", "credit_card", card.GrantedAt)
		if err != nil || !g.GrantedAt.Equal(card.GrantedAt) {
			t.Fatalf("import = %+v, %v", g, err)
		}
	})
	t.Run("a block cancels the live hold until it is lifted", func(t *testing.T) {
		c := e.check(t, "C-2", "credit_card")
		ended, err := svc.Block(ctx, admin, "C-2", "fraud review", time.Time{})
		if err != nil || ended == nil || ended.ID != c.ID {
			t.Fatalf("block = %+v, %v; want %s cancelled", ended, err, c.ID)
		}
		_, _, err = svc.Check(ctx, portal, validation.CheckInput{CustomerID: "C-2", Product: "credit_card"})
		storetest.WantReason(t, err, validation.ReasonCustomerBlocked)
		if err := svc.Unblock(ctx, admin, "C-2"); err != nil {
			t.Fatal(err)
		}
		e.check(t, "C-2", "credit_card")
	})
	t.Run("the audit tells the story, newest first", func(t *testing.T) {
		events, err := svc.Audit(ctx, "C-1", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []validation.EventType
		for _, ev := range events {
			if !ev.Type.Attempt() {
				got = append(got, ev.Type)
			}
		}
		want := []validation.EventType{
			validation.EventImported, validation.EventReleased, validation.EventRedeemed, validation.EventChecked,
			validation.EventReleased, validation.EventRedeemed, validation.EventChecked,
			validation.EventCancelled, validation.EventChecked, validation.EventExpired, validation.EventChecked,
		}
		if !slices.Equal(got, want) {
			t.Fatalf("audit = %v,\nwant %v", got, want)
		}
	})
}
