package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

func TestContractBlock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		card := hold(t, s, "C-1", "credit_card", t0)
		if _, _, err := redeemToken(s, card, "card-service", t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "C-1", Product: "credit_card", Actor: "card-service", Now: t0}); err != nil {
			t.Fatal(err)
		}
		live := hold(t, s, "C-1", "personal_loan", t0.Add(time.Minute))

		cancelled, err := s.Block(ctx, validation.BlockRequest{CustomerID: "C-1", Reason: "suspected fraud", Actor: "ops", Now: t0.Add(2 * time.Minute)})
		if err != nil || cancelled == nil || cancelled.ID != live.ID || cancelled.Status != validation.StatusCancelled || cancelled.EndReason != "customer_blocked" {
			t.Fatalf("block = %+v, %v; want the live hold cancelled", cancelled, err)
		}
		_, _, err = s.Hold(ctx, holdRequest(t, "C-1", "credit_card", t0.Add(3*time.Minute)))
		e := wantReason(t, err, validation.ReasonCustomerBlocked)
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
		wantReason(t, s.Unblock(ctx, "C-1", "ops", t0.Add(4*time.Minute)), validation.ReasonNotFound)
		hold(t, s, "C-1", "credit_card", t0.Add(5*time.Minute))
	})
}

func TestContractBlockUntil(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		until := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		if _, err := s.Block(ctx, validation.BlockRequest{CustomerID: "C-1", Reason: "dispute", Until: until, Actor: "ops", Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.Hold(ctx, holdRequest(t, "C-1", "credit_card", until.Add(-time.Minute)))
		e := wantReason(t, err, validation.ReasonCustomerBlocked)
		if !e.Violations[0].Until.Equal(until) {
			t.Fatalf("until = %v, want %v", e.Violations[0].Until, until)
		}
		// Past its end the block no longer counts, even before Redis drops the key.
		hold(t, s, "C-1", "credit_card", until.Add(time.Second))
	})
}

func ratingRule(tb testing.TB, min int) validation.Rule {
	r := rule(tb, "credit_card")
	r.MinRating = min
	return r
}

func score(n int) *int { return &n }

func TestContractRating(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		req := holdRequest(t, "C-1", "credit_card", t0)
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
		e := wantReason(t, err, validation.ReasonRatingTooLow)
		if v := e.Violations[0]; *v.RequiredRating != 600 || *v.Rating != 550 {
			t.Fatalf("violation = %+v", v)
		}
		// The score is cached: no bureau needed for the next check.
		req.Rating.Score = nil
		req.CheckID = mustID(t, "C-1")
		_, _, err = s.Hold(ctx, req)
		wantReason(t, err, validation.ReasonRatingTooLow)

		// A fresh, higher score replaces the cached one.
		req.Rating.Score = score(720)
		req.CheckID = mustID(t, "C-1")
		if _, _, err := s.Hold(ctx, req); err != nil {
			t.Fatalf("score 720 ≥ 600: %v", err)
		}

		// Bureau unavailable and the policy allows: the rule is skipped.
		skip := holdRequest(t, "C-2", "credit_card", t0)
		skip.Rule, skip.Rating.Skip = ratingRule(t, 600), true
		if _, _, err := s.Hold(ctx, skip); err != nil {
			t.Fatalf("skipped rating: %v", err)
		}
	})
}

// TestContractRatingBoundary: a score equal to min_rating passes, one
// below fails, in a check and in its dry run alike.
func TestContractRatingBoundary(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
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
				req := holdRequest(t, fmt.Sprintf("R-%d-check", i), "credit_card", t0)
				req.Rule, req.Rating = ratingRule(t, min), fresh
				_, _, err = s.Hold(ctx, req)
				if tt.pass {
					if err != nil {
						t.Fatalf("check with score %d, min_rating %d: %v", tt.score, min, err)
					}
					return
				}
				wantReason(t, err, validation.ReasonRatingTooLow)
			})
		}
	})
}

// TestContractEligibilityMatchesCheck puts customers in every state and
// asserts that the dry run and then a real check both decide what the
// table says: the dry run alone, compared with a check that runs the same
// evaluate, would agree with it even where both are wrong. The dry run
// gets the bureau's fresh score; the check reads the score the dry run
// cached, as it would after a real dry run.
func TestContractEligibilityMatchesCheck(t *testing.T) {
	const (
		blocked     = validation.ReasonCustomerBlocked
		lowRating   = validation.ReasonRatingTooLow
		holdsIt     = validation.ReasonAlreadyHoldsProduct
		conflicting = validation.ReasonConflictingProduct
		holdExists  = validation.ReasonHoldExists
	)
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		grant := func(product string, max int) func(testing.TB, string) {
			return func(tb testing.TB, c string) {
				tb.Helper()
				req := holdRequest(tb, c, product, t0)
				req.Rule.Max = max
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
				req := holdRequest(tb, c, product, t0)
				req.Rule.Max = max
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
					r.Max = tt.max
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

				req := holdRequest(t, customer, "credit_card", now)
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
	})
}

func reasonsOf(vs []validation.Violation) []validation.Reason {
	var out []validation.Reason
	for _, v := range vs {
		out = append(out, v.Reason)
	}
	return out
}

// snapshot sums up what a dry run must not change: the live hold, the
// grants and the length of the audit trail.
func snapshot(tb testing.TB, s *redisstore.Store, customer string, now time.Time) string {
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
