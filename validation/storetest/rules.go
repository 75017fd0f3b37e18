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

// Contract tests of redemption semantics, the OTP budget, blocks, ratings,
// eligibility and abandoning a check.

// OTPLimitAcrossHolds: check, guess, cancel, repeat gains
// nothing: wrong codes count per customer across holds, and past the limit
// every OTP redemption of the customer is otp_rate_limited until the window
// ends, even with the right code; the token still works.
func OTPLimitAcrossHolds(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	now := t0
	for i := range 3 {
		c := NewHold(t, s, "L-1", "credit_card", now)
		_, _, err := redeemOTPLimited(s, "L-1", WrongCode(t, c.Secret, now), now)
		WantReason(t, err, validation.ReasonOTPInvalid)
		if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "L-1", CheckID: c.ID, Actor: "branch-portal", Now: now}); err != nil {
			t.Fatalf("cancel %d: %v", i, err)
		}
		now = now.Add(time.Minute)
	}
	c := NewHold(t, s, "L-1", "credit_card", now)
	code, _, err := tokens.OTPCode(c.Secret, now)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = redeemOTPLimited(s, "L-1", code, now)
	e := WantReason(t, err, validation.ReasonOTPRateLimited)
	if got, want := e.RetryAfter, time.Hour-3*time.Minute; got != want {
		t.Fatalf("RetryAfter = %v, want %v (the window opened with the first wrong code)", got, want)
	}
	WantError(t, err, validation.OTPRateLimited(e.RetryAfter))
	events, err := s.Audit(ctx, "L-1", 50, now)
	if err != nil {
		t.Fatal(err)
	}
	limited := 0
	for _, ev := range events {
		if ev.Type == validation.EventOTPRateLimited {
			limited++
		}
	}
	if limited != 1 {
		t.Fatalf("otp_rate_limited events = %d, want 1: %+v", limited, events)
	}
	// Another customer is not affected, nor is the token.
	other := NewHold(t, s, "L-2", "credit_card", now)
	if code, _, _ := tokens.OTPCode(other.Secret, now); true {
		if _, _, err := redeemOTPLimited(s, "L-2", code, now); err != nil {
			t.Fatalf("another customer's OTP: %v", err)
		}
	}
	if _, _, err := TokenRedemption(s, c, "card-service", now); err != nil {
		t.Fatalf("token redemption while OTPs are limited: %v", err)
	}
	// Once the window has ended, OTPs work again.
	later := t0.Add(time.Hour + time.Second)
	if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "L-1", Product: "credit_card", Actor: "card-service", Now: later}); err != nil {
		t.Fatal(err)
	}
	c = NewHold(t, s, "L-1", "credit_card", later)
	code, _, _ = tokens.OTPCode(c.Secret, later)
	if _, _, err := redeemOTPLimited(s, "L-1", code, later); err != nil {
		t.Fatalf("OTP after the window: %v", err)
	}
}

// RedemptionSemantics tests every cell of the redemption table:
// a fresh customer is brought into the state, one redemption is made, and
// its answer is compared; a refusal must leave the ledger as it was.
func RedemptionSemantics(t *testing.T, b Backend) {
	s := b.Store
	var cells []*cell
	for si, row := range redemptionSemantics {
		for ci, cred := range credentials {
			for ki, caller := range callers {
				cells = append(cells, &cell{
					customer: fmt.Sprintf("R-%d-%d-%d", si, ci, ki),
					wantOut:  row.want[ci*len(callers)+ki], cred: cred, caller: caller,
				})
			}
		}
	}
	// The expiring customers go first and share one wait for the clock
	// (miniredis's fast-forward ages every key), then the others.
	stateOf := func(i int) string { return redemptionSemantics[i/(len(credentials)*len(callers))].state }
	for _, expiring := range []bool{true, false} {
		for i, c := range cells {
			if (stateOf(i) == "expired") == expiring {
				setUp(t, b, stateOf(i), c)
			}
		}
		for i, c := range cells {
			if expiring && stateOf(i) == "expired" {
				b.expire(t, c.customer)
			}
		}
	}
	for i, c := range cells {
		state := stateOf(i)
		t.Run(state+"/"+c.cred+"/"+c.caller, func(t *testing.T) {
			redeemCell(t, s, state, c)
		})
	}
}

func Block(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	card := NewHold(t, s, "C-1", "credit_card", t0)
	if _, _, err := TokenRedemption(s, card, "card-service", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "C-1", Product: "credit_card", Actor: "card-service", Now: t0}); err != nil {
		t.Fatal(err)
	}
	live := NewHold(t, s, "C-1", "personal_loan", t0.Add(time.Minute))

	cancelled, err := s.Block(ctx, validation.BlockRequest{CustomerID: "C-1", Reason: "suspected fraud", Actor: "ops", Now: t0.Add(2 * time.Minute)})
	if err != nil || cancelled == nil || cancelled.ID != live.ID || cancelled.Status != validation.StatusCancelled || cancelled.EndReason != "customer_blocked" {
		t.Fatalf("block = %+v, %v; want the live hold cancelled", cancelled, err)
	}
	_, _, err = s.Hold(ctx, NewHoldRequest(t, "C-1", "credit_card", t0.Add(3*time.Minute)))
	e := WantReason(t, err, validation.ReasonCustomerBlocked)
	if v := e.Violations[0]; v.Note != "suspected fraud" || v.By != "ops" || !v.Since.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("violation = %+v", v)
	}
	cust, err := s.Customer(ctx, "C-1", t0.Add(3*time.Minute))
	if err != nil || cust.Block == nil || cust.Block.Reason != "suspected fraud" || cust.Hold != nil {
		t.Fatalf("customer = %+v, %v", cust, err)
	}
	events, _ := s.Audit(ctx, "C-1", 3, t0.Add(3*time.Minute))
	if events[0].Type != validation.EventRefused || !slices.Equal(events[0].Reasons, []validation.Reason{validation.ReasonCustomerBlocked}) ||
		events[1].Type != validation.EventCancelled || events[2].Type != validation.EventBlocked || events[2].Note != "suspected fraud" {
		t.Fatalf("audit = %+v", events)
	}

	if err := s.Unblock(ctx, "C-1", "ops", t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	WantReason(t, s.Unblock(ctx, "C-1", "ops", t0.Add(4*time.Minute)), validation.ReasonNotFound)
	NewHold(t, s, "C-1", "credit_card", t0.Add(5*time.Minute))
}

func BlockUntil(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	until := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if _, err := s.Block(ctx, validation.BlockRequest{CustomerID: "C-1", Reason: "dispute", Until: until, Actor: "ops", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Hold(ctx, NewHoldRequest(t, "C-1", "credit_card", until.Add(-time.Minute)))
	e := WantReason(t, err, validation.ReasonCustomerBlocked)
	if !e.Violations[0].Until.Equal(until) {
		t.Fatalf("until = %v, want %v", e.Violations[0].Until, until)
	}
	// Past its end the block no longer counts, even before Redis drops the key.
	NewHold(t, s, "C-1", "credit_card", until.Add(time.Second))
}

func Rating(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	req := NewHoldRequest(t, "C-1", "credit_card", t0)
	req.Rule = ratingRule(t, 600)
	req.Rating.CacheTTL = time.Hour

	_, _, err := s.Hold(ctx, req)
	if !errors.Is(err, validation.ErrRatingNeeded) {
		t.Fatalf("cold cache: err = %v, want ErrRatingNeeded", err)
	}
	if cust, _ := s.Customer(ctx, "C-1", t0); cust.Hold != nil {
		t.Fatal("a hold was placed while the rating was unknown")
	}

	req.Rating.Score = score(550)
	_, _, err = s.Hold(ctx, req)
	e := WantReason(t, err, validation.ReasonRatingTooLow)
	if v := e.Violations[0]; *v.RequiredRating != 600 || *v.Rating != 550 {
		t.Fatalf("violation = %+v", v)
	}
	// The score is cached: no bureau needed for the next check.
	req.Rating.Score = nil
	req.CheckID = NewCheckID(t, "C-1")
	_, _, err = s.Hold(ctx, req)
	WantReason(t, err, validation.ReasonRatingTooLow)

	// A fresh, higher score replaces the cached one.
	req.Rating.Score = score(720)
	req.CheckID = NewCheckID(t, "C-1")
	if _, _, err := s.Hold(ctx, req); err != nil {
		t.Fatalf("score 720 ≥ 600: %v", err)
	}

	// Bureau unavailable and the policy allows: the rule is skipped.
	skip := NewHoldRequest(t, "C-2", "credit_card", t0)
	skip.Rule, skip.Rating.Skip = ratingRule(t, 600), true
	if _, _, err := s.Hold(ctx, skip); err != nil {
		t.Fatalf("skipped rating: %v", err)
	}
}

// RatingBoundary: a score equal to min_rating passes, one
// below fails, in a check and in its dry run alike.
func RatingBoundary(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()
	const min = 600
	tests := []struct {
		name  string
		score int
		pass  bool
	}{
		{"one below min_rating", min - 1, false},
		{"exactly min_rating", min, true},
		{"one above min_rating", min + 1, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh := validation.RatingInput{Score: score(tt.score), CacheTTL: time.Hour}
			dry, err := s.Eligibility(ctx, validation.EligibilityRequest{Rule: ratingRule(t, min), CustomerID: fmt.Sprintf("R-%d-dry", i), Rating: fresh, Now: t0})
			if err != nil {
				t.Fatal(err)
			}
			wantState := validation.RatingFail
			if tt.pass {
				wantState = validation.RatingPass
			}
			if got, want := dry.Rating, wantState; got != want {
				t.Fatalf("dry run rating = %s, want %s (violations %+v)", got, want, dry.Violations)
			}
			req := NewHoldRequest(t, fmt.Sprintf("R-%d-check", i), "credit_card", t0)
			req.Rule, req.Rating = ratingRule(t, min), fresh
			_, _, err = s.Hold(ctx, req)
			if tt.pass {
				if err != nil {
					t.Fatalf("check with score %d, min_rating %d: %v", tt.score, min, err)
				}
				return
			}
			WantReason(t, err, validation.ReasonRatingTooLow)
		})
	}
}

// EligibilityMatchesCheck puts customers in every state and
// asserts that the dry run and then a real check both decide what the
// table says: the dry run alone, compared with a check that runs the same
// evaluate, would agree with it even where both are wrong. The dry run
// gets the bureau's fresh score; the check reads the score the dry run
// cached, as it would after a real dry run.
func EligibilityMatchesCheck(t *testing.T, b Backend) {
	const (
		blocked     = validation.ReasonCustomerBlocked
		lowRating   = validation.ReasonRatingTooLow
		holdsIt     = validation.ReasonAlreadyHoldsProduct
		conflicting = validation.ReasonConflictingProduct
		holdExists  = validation.ReasonHoldExists
	)
	s, ctx := b.Store, context.Background()
	grant := func(product string, max int) func(testing.TB, string) {
		return func(tb testing.TB, c string) {
			tb.Helper()
			req := NewHoldRequest(tb, c, product, t0)
			req.Rule = WithMax(req.Rule, max)
			h, _, err := s.Hold(ctx, req)
			if err != nil {
				tb.Fatalf("hold %s: %v", product, err)
			}
			if _, _, err := s.Redeem(ctx, validation.RedeemRequest{Rule: req.Rule, CustomerID: c, CheckID: h.ID, Actor: "ops", Now: t0, MaxAttempts: 5}); err != nil {
				tb.Fatalf("redeem %s: %v", product, err)
			}
		}
	}
	liveHold := func(product string, max int) func(testing.TB, string) {
		return func(tb testing.TB, c string) {
			tb.Helper()
			req := NewHoldRequest(tb, c, product, t0)
			req.Rule = WithMax(req.Rule, max)
			if _, _, err := s.Hold(ctx, req); err != nil {
				tb.Fatalf("hold %s: %v", product, err)
			}
		}
	}
	block := func(tb testing.TB, c string) {
		tb.Helper()
		if _, err := s.Block(ctx, validation.BlockRequest{CustomerID: c, Reason: "r", Actor: "ops", Now: t0}); err != nil {
			tb.Fatal(err)
		}
	}
	type setup = func(testing.TB, string)
	tests := []struct {
		name  string
		setup []setup
		max   int // of the card, the product asked for; 0: 1
		score int // the bureau's score; the card needs 500
		want  []validation.Reason
	}{
		{name: "free", score: 800},
		{name: "rating exactly the minimum", score: 500},
		{name: "rating one below the minimum", score: 499, want: []validation.Reason{lowRating}},
		{name: "holds a conflicting grant", setup: []setup{grant("personal_loan", 1)}, score: 800, want: []validation.Reason{conflicting}},
		{name: "holds the product, max 1", setup: []setup{grant("credit_card", 1)}, score: 800, want: []validation.Reason{holdsIt}},
		{name: "holds one of max 2", setup: []setup{grant("credit_card", 2)}, max: 2, score: 800},
		{name: "holds two of max 2", setup: []setup{grant("credit_card", 2), grant("credit_card", 2)}, max: 2, score: 800, want: []validation.Reason{holdsIt}},
		{name: "live hold of the other product", setup: []setup{liveHold("personal_loan", 1)}, score: 800, want: []validation.Reason{holdExists}},
		{name: "live hold of the same product", setup: []setup{liveHold("credit_card", 1)}, score: 800, want: []validation.Reason{holdExists}},
		{name: "blocked", setup: []setup{block}, score: 800, want: []validation.Reason{blocked}},
		{name: "blocked, low rating, conflicting grant", setup: []setup{grant("personal_loan", 1), block}, score: 100,
			want: []validation.Reason{blocked, lowRating, conflicting}},
		{name: "low rating, conflicting grant, live hold", setup: []setup{grant("personal_loan", 2), liveHold("personal_loan", 2)}, score: 100,
			want: []validation.Reason{lowRating, conflicting, holdExists}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			customer := fmt.Sprintf("E-%d", i)
			for _, setup := range tt.setup {
				setup(t, customer)
			}
			r := ratingRule(t, 500)
			if tt.max > 0 {
				r = WithMax(r, tt.max)
			}
			now := t0.Add(time.Minute)
			before := snapshot(t, s, customer, now)

			dry, err := s.Eligibility(ctx, validation.EligibilityRequest{Rule: r, CustomerID: customer, Now: now, Rating: validation.RatingInput{Score: score(tt.score), CacheTTL: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			if got := reasonsOf(dry.Violations); !slices.Equal(got, tt.want) {
				t.Fatalf("dry run says %v, want %v", got, tt.want)
			}
			if got, want := snapshot(t, s, customer, now), before; got != want {
				t.Fatalf("the dry run changed the customer: %s, was %s", got, want)
			}

			req := NewHoldRequest(t, customer, "credit_card", now)
			req.Rule, req.Rating.CacheTTL = r, time.Hour
			c, _, err := s.Hold(ctx, req)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("the dry run allowed it, the check says %v", err)
				}
				wantHold(t, s, customer, c.ID, now)
				return
			}
			var e *validation.Error
			if !errors.As(err, &e) {
				t.Fatalf("the dry run refused it (%v), the check says %v", tt.want, err)
			}
			if got := reasonsOf(e.Violations); !slices.Equal(got, tt.want) {
				t.Fatalf("the check says %v, want %v (as the dry run said)", got, tt.want)
			}
		})
	}
}

func Abandon(t *testing.T, b Backend) {
	s, ctx := b.Store, context.Background()

	t.Run("a placed, undelivered hold is cancelled", func(t *testing.T) {
		c := NewHold(t, s, "A-1", "credit_card", t0)
		if got, want := abandon(t, s, "A-1", c.ID), validation.AbandonCancelled; got != want {
			t.Fatalf("Abandon = %s, want %s", got, want)
		}
		got, err := s.Check(ctx, "A-1", c.ID, t0.Add(time.Minute))
		if err != nil || got.Status != validation.StatusCancelled || got.EndReason != "unknown_outcome" {
			t.Fatalf("check = %+v %v, want cancelled by unknown_outcome", got, err)
		}
		events, err := s.Audit(ctx, "A-1", 1, t0.Add(time.Minute))
		if err != nil || len(events) != 1 || events[0].Type != validation.EventCancelled || events[0].Reason != "unknown_outcome" {
			t.Fatalf("audit = %+v %v, want the cancel with reason unknown_outcome", events, err)
		}
		NewHold(t, s, "A-1", "personal_loan", t0.Add(time.Minute)) // the customer is free
	})
	t.Run("a hold its client got by an idempotent replay is kept", func(t *testing.T) {
		first, _ := DeliveredHold(t, s, "A-2", t0)
		if got, want := abandon(t, s, "A-2", first.ID), validation.AbandonDelivered; got != want {
			t.Fatalf("Abandon = %s, want %s", got, want)
		}
		if _, _, err := TokenRedemption(s, first, "card-service", t0.Add(time.Minute)); err != nil {
			t.Fatalf("redeem the delivered hold: %v", err)
		}
	})
	t.Run("a check abandoned before Redis ran it never places a hold", func(t *testing.T) {
		req := NewHoldRequest(t, "A-3", "credit_card", t0)
		if got, want := abandon(t, s, "A-3", req.CheckID), validation.AbandonTombstone; got != want {
			t.Fatalf("Abandon = %s, want %s", got, want)
		}
		_, _, err := s.Hold(ctx, req) // the late script
		WantError(t, err, validation.CheckAbandoned())
		cu, err := s.Customer(ctx, "A-3", t0)
		if err != nil || cu.Hold != nil {
			t.Fatalf("customer = %+v %v, want no hold", cu, err)
		}
	})
	t.Run("an ended check is left alone", func(t *testing.T) {
		c := NewHold(t, s, "A-4", "credit_card", t0)
		if _, _, err := TokenRedemption(s, c, "card-service", t0); err != nil {
			t.Fatal(err)
		}
		if got, want := abandon(t, s, "A-4", c.ID), validation.AbandonEnded; got != want {
			t.Fatalf("Abandon = %s, want %s", got, want)
		}
		if got := grantsOf(t, s, "A-4"); len(got) != 1 {
			t.Fatalf("grants = %v, want the grant kept", got)
		}
	})
}

func redeemOTPLimited(s validation.Store, customer, code string, now time.Time) (validation.Grant, bool, error) {
	return s.Redeem(context.Background(), validation.RedeemRequest{
		Rule: DefaultRule(nil, "credit_card"), CustomerID: customer, Code: code, Actor: "card-service", Now: now,
		MaxAttempts: 5, OTPFailures: 3, OTPWindow: time.Hour,
	})
}

// The credentials and callers of TestContractRedemptionSemantics: a
// redemption names its check with the approval token or with an OTP (the
// right one: valid for the live hold, or the one that redeemed the check;
// or another one), and comes from the client that redeemed the check (or,
// for a live hold, the first redeemer) or from another redeemer of the
// product.
var (
	credentials = []string{"token", "otp", "other otp"}
	callers     = []string{"redeemer", "another redeemer"}
)

// redemptionSemantics is docs/api.md's table "Redemption: what each attempt gets"
// (state of the check × credential × caller → answer): "201" grants, "200"
// replays the grant, anything else is the refusal's reason. The columns
// follow credentials × callers.
var redemptionSemantics = []struct {
	state string
	want  [6]string
}{
	{"held", [6]string{"201", "201", "201", "201", "otp_invalid", "otp_invalid"}},
	{"redeemed by otp", [6]string{"200", "already_redeemed", "200", "already_redeemed", "otp_invalid", "already_redeemed"}},
	{"redeemed by token", [6]string{"200", "already_redeemed", "otp_invalid", "already_redeemed", "otp_invalid", "already_redeemed"}},
	{"released", [6]string{"grant_released", "grant_released", "grant_released", "grant_released", "grant_released", "grant_released"}},
	{"cancelled", [6]string{"hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired"}},
	{"expired", [6]string{"hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired"}},
	{"otp locked", [6]string{"otp_locked", "otp_locked", "otp_locked", "otp_locked", "otp_locked", "otp_locked"}},
	{"unknown", [6]string{"hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired"}},
}

// cell is one customer brought into a state, ready for one redemption.
type cell struct {
	customer string
	check    validation.Check
	code     string // the right code: the one that redeemed, or valid now
	wantOut  string
	cred     string
	caller   string
}

// setUp brings c's customer into state, on the credit card.
func setUp(tb testing.TB, b Backend, state string, c *cell) {
	tb.Helper()
	s, ctx, now := b.Store, context.Background(), time.Now()
	if state == "unknown" {
		c.check = validation.Check{ID: NewCheckID(tb, c.customer), CustomerID: c.customer, Product: "credit_card"}
		c.code = "123456"
		return
	}
	req := NewHoldRequest(tb, c.customer, "credit_card", now)
	if state == "expired" {
		req.Rule.HoldTTL = time.Second
	}
	ch, _, err := s.Hold(ctx, req)
	if err != nil {
		tb.Fatalf("hold %s: %v", c.customer, err)
	}
	c.check = ch
	if c.code, _, err = tokens.OTPCode(ch.Secret, now); err != nil {
		tb.Fatal(err)
	}
	switch state {
	case "redeemed by otp", "released":
		_, _, err = OTPRedemption(s, c.customer, "credit_card", c.code, "card-service", now)
	case "redeemed by token":
		_, _, err = TokenRedemption(s, ch, "card-service", now)
	case "cancelled":
		_, err = s.Cancel(ctx, validation.CancelRequest{CustomerID: c.customer, CheckID: ch.ID, Actor: "branch-portal", Now: now})
	case "otp locked":
		for range 5 {
			_, _, err = OTPRedemption(s, c.customer, "credit_card", WrongCode(tb, ch.Secret, now), "card-service", now)
		}
		if validation.ReasonOf(err) == validation.ReasonOTPLocked {
			err = nil
		}
	}
	if err != nil {
		tb.Fatalf("bring %s into state %q: %v", c.customer, state, err)
	}
	if state == "released" {
		if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: c.customer, Product: "credit_card", CheckID: ch.ID, Actor: "card-service", Now: now}); err != nil {
			tb.Fatalf("release %s: %v", c.customer, err)
		}
	}
}

// redeemCell makes c's one redemption and checks its answer.
func redeemCell(t *testing.T, s validation.Store, state string, c *cell) {
	now := time.Now()
	if state == "expired" && now.Before(c.check.ExpiresAt) {
		// A store that decides expiry by the request's time (inmem) sees
		// it only from a time past it; Redis has dropped the hold already.
		now = c.check.ExpiresAt
	}
	actor := "card-service"
	if c.caller == "another redeemer" {
		actor = "card-service-2"
	}
	before := grantsOf(t, s, c.customer)
	var (
		g        validation.Grant
		replayed bool
		err      error
	)
	switch c.cred {
	case "token":
		g, replayed, err = TokenRedemption(s, c.check, actor, now)
	case "otp":
		g, replayed, err = OTPRedemption(s, c.customer, "credit_card", c.code, actor, now)
	case "other otp":
		code := WrongCode(t, c.check.Secret, now)
		if c.check.Secret == nil {
			code = "654321"
		}
		g, replayed, err = OTPRedemption(s, c.customer, "credit_card", code, actor, now)
	}
	switch c.wantOut {
	case "201", "200":
		if err != nil {
			t.Fatalf("redeem = %v, want %s", err, c.wantOut)
		}
		if got, want := replayed, c.wantOut == "200"; got != want {
			t.Fatalf("replayed = %v, want %v", got, want)
		}
		if g.CheckID != c.check.ID || g.Product != "credit_card" {
			t.Fatalf("grant = %+v, want check %s", g, c.check.ID)
		}
		if after := grantsOf(t, s, c.customer); !slices.Contains(after, c.check.ID) {
			t.Fatalf("ledger = %v after a %s, want grant %s in it", after, c.wantOut, c.check.ID)
		}
	default:
		e := WantReason(t, err, validation.Reason(c.wantOut))
		if e.Reason == validation.ReasonOTPInvalid {
			if live := state == "held"; (e.AttemptsLeft != nil) != live {
				t.Fatalf("attempts_left = %v, want it only while a hold lives", e.AttemptsLeft)
			}
		}
		if after := grantsOf(t, s, c.customer); !slices.Equal(after, before) {
			t.Fatalf("ledger = %v after a refusal, was %v", after, before)
		}
	}
}

// grantsOf lists the check ids of the customer's grants.
func grantsOf(tb testing.TB, s validation.Store, customer string) []string {
	tb.Helper()
	cu, err := s.Customer(context.Background(), customer, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	ids := []string{}
	for _, g := range cu.Grants {
		ids = append(ids, g.CheckID)
	}
	return ids
}

func ratingRule(tb testing.TB, min int) validation.Rule {
	r := DefaultRule(tb, "credit_card")
	r.MinRating = min
	return r
}

func score(n int) *int { return &n }

func abandon(tb testing.TB, s validation.Store, customer, id string) validation.AbandonOutcome {
	tb.Helper()
	out, err := s.Abandon(context.Background(), validation.AbandonRequest{CustomerID: customer, CheckID: id, Actor: "arbiter", Now: t0.Add(time.Minute)})
	if err != nil {
		tb.Fatalf("Abandon(%s): %v", id, err)
	}
	return out
}

// DeliveredHold places a credit card check for customer with an
// Idempotency-Key and replays it once, as a client's retry does, which
// marks it delivered. It returns the check and the retry's request: sent
// again, it replays the check without writing anything.
func DeliveredHold(t *testing.T, s validation.Store, customer string, now time.Time) (validation.Check, validation.HoldRequest) {
	t.Helper()
	req := NewHoldRequest(t, customer, "credit_card", now)
	req.IdempotencyKey, req.RequestHash = "k", "h"
	first, _, err := s.Hold(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	retry := req
	retry.CheckID = NewCheckID(t, customer)
	if _, replayed, err := s.Hold(context.Background(), retry); err != nil || !replayed {
		t.Fatalf("replay = %v, %v", replayed, err)
	}
	return first, retry
}

// snapshot sums up what a dry run must not change: the live hold, the
// grants and the length of the audit trail.
func snapshot(tb testing.TB, s validation.Store, customer string, now time.Time) string {
	tb.Helper()
	cust, err := s.Customer(context.Background(), customer, now)
	if err != nil {
		tb.Fatal(err)
	}
	events, err := s.Audit(context.Background(), customer, 1000, now)
	if err != nil {
		tb.Fatal(err)
	}
	hold := "none"
	if cust.Hold != nil {
		hold = cust.Hold.ID
	}
	return fmt.Sprintf("hold %s, %d grants, %d events", hold, len(cust.Grants), len(events))
}

func reasonsOf(vs []validation.Violation) []validation.Reason {
	var out []validation.Reason
	for _, v := range vs {
		out = append(out, v.Reason)
	}
	return out
}
