package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
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

// TestContractEligibilityMatchesCheck puts customers in every state and
// asserts the dry run lists exactly the violations a check then returns.
func TestContractEligibilityMatchesCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, ctx := b.store, context.Background()
		setups := map[string]func(customer string){
			"free": func(string) {},
			"blocked": func(c string) {
				s.Block(ctx, validation.BlockRequest{CustomerID: c, Reason: "r", Actor: "ops", Now: t0})
			},
			"holds the other product": func(c string) {
				h := hold(t, s, c, "personal_loan", t0)
				redeemToken(s, h, "loan-service", t0)
			},
			"holds the same product": func(c string) {
				h := hold(t, s, c, "credit_card", t0)
				redeemToken(s, h, "card-service", t0)
			},
			"live hold": func(c string) { hold(t, s, c, "personal_loan", t0) },
			"low rating": func(c string) {
				req := holdRequest(t, c, "personal_loan", t0)
				req.Rule = rule(t, "personal_loan")
				req.Rule.MinRating, req.Rating.Score, req.Rating.CacheTTL = 1, score(100), time.Hour
				_, _, err := s.Hold(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				s.Cancel(ctx, validation.CancelRequest{CustomerID: c, CheckID: req.CheckID, Actor: "x", Now: t0})
			},
			"blocked with a live hold and a grant": func(c string) {
				h := hold(t, s, c, "personal_loan", t0)
				redeemToken(s, h, "loan-service", t0)
				s.Block(ctx, validation.BlockRequest{CustomerID: c, Reason: "r", Actor: "ops", Now: t0})
			},
		}
		i := 0
		for name, setup := range setups {
			i++
			customer := "E-" + string(rune('a'+i))
			t.Run(name, func(t *testing.T) {
				setup(customer)
				r := ratingRule(t, 500)
				res, err := s.Eligibility(ctx, validation.EligibilityRequest{Rule: r, CustomerID: customer, Now: t0.Add(time.Minute), Rating: validation.RatingInput{CacheTTL: time.Hour}})
				if errors.Is(err, validation.ErrRatingNeeded) {
					res, err = s.Eligibility(ctx, validation.EligibilityRequest{Rule: r, CustomerID: customer, Now: t0.Add(time.Minute), Rating: validation.RatingInput{Score: score(800), CacheTTL: time.Hour}})
				}
				if err != nil {
					t.Fatal(err)
				}
				req := holdRequest(t, customer, "credit_card", t0.Add(time.Minute))
				req.Rule, req.Rating.CacheTTL = r, time.Hour
				_, _, herr := s.Hold(ctx, req)
				var got, want []validation.Reason
				for _, v := range res.Violations {
					got = append(got, v.Reason)
				}
				var e *validation.Error
				if errors.As(herr, &e) {
					for _, v := range e.Violations {
						want = append(want, v.Reason)
					}
				} else if herr != nil {
					t.Fatalf("hold: %v", herr)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("eligibility says %v, the check then says %v", got, want)
				}
			})
		}
	})
}
