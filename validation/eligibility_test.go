package validation_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

const ratedPolicy = `
products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service], min_rating: 600 }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
exclusive: [[credit_card, personal_loan]]
rating:
  url: http://bureau.test/v1/ratings/{customer_id}
  on_unavailable: %s
`

// fakeRatings is a RatingSource answering a fixed score, or failing.
type fakeRatings struct {
	score int
	err   error
	calls atomic.Int64
}

func (f *fakeRatings) Rating(context.Context, string) (int, error) {
	f.calls.Add(1)
	return f.score, f.err
}

var (
	checker = validation.Actor{ID: "branch-portal", Roles: []validation.Role{validation.RoleChecker}}
	admin   = validation.Actor{ID: "ops", Roles: []validation.Role{validation.RoleAdmin}}
)

func newService(tb testing.TB, onUnavailable string, r validation.RatingSource) *validation.Service {
	tb.Helper()
	policy, err := policyfile.Parse([]byte(strings.Replace(ratedPolicy, "%s", onUnavailable, 1)))
	if err != nil {
		tb.Fatal(err)
	}
	srv := redistest.MustStartRedis(tb)
	return &validation.Service{Store: redisstore.New(srv.Client(tb), redisstore.Options{}), Policy: policy, Ratings: r}
}

func TestCheckAsksTheBureauOnceThenUsesTheCache(t *testing.T) {
	bureau := &fakeRatings{score: 700}
	svc := newService(t, "refuse", bureau)
	ctx := context.Background()
	c, _, err := svc.Check(ctx, checker, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"})
	if err != nil {
		t.Fatal(err)
	}
	if got := bureau.calls.Load(); got != 1 {
		t.Fatalf("bureau calls = %d, want 1", got)
	}
	if _, err := svc.Cancel(ctx, checker, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Check(ctx, checker, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"}); err != nil {
		t.Fatal(err)
	}
	if got := bureau.calls.Load(); got != 1 {
		t.Fatalf("bureau calls = %d after a warm check, want still 1", got)
	}
	// Products without min_rating never ask.
	if _, _, err := svc.Check(ctx, checker, validation.CheckInput{CustomerID: "C-2", Product: "personal_loan"}); err != nil {
		t.Fatal(err)
	}
	if got := bureau.calls.Load(); got != 1 {
		t.Fatalf("bureau calls = %d after a loan check, want still 1", got)
	}
}

func TestRatingTooLowIsExplainedWithoutNumbers(t *testing.T) {
	svc := newService(t, "refuse", &fakeRatings{score: 420})
	_, _, err := svc.Check(context.Background(), checker, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"})
	var e *validation.Error
	if !errors.As(err, &e) || e.Reason != validation.ReasonRatingTooLow {
		t.Fatalf("err = %v, want rating_too_low", err)
	}
	if got, want := e.Detail, "Customer's credit rating is below what a Credit card requires."; got != want {
		t.Fatalf("detail = %q, want %q", got, want)
	}
	if v := e.Violations[0]; v.RequiredRating == nil || *v.RequiredRating != 600 || *v.Rating != 420 {
		t.Fatalf("numbers for admins = %+v", v) // web redacts them for non-admins
	}
}

func TestBureauUnavailable(t *testing.T) {
	down := errors.New("bureau down")
	t.Run("refuse", func(t *testing.T) {
		svc := newService(t, "refuse", &fakeRatings{err: down})
		_, _, err := svc.Check(context.Background(), checker, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"})
		if !errors.Is(err, validation.ErrRatingUnavailable) || !errors.Is(err, down) {
			t.Fatalf("err = %v, want rating_unavailable wrapping the cause", err)
		}
	})
	t.Run("allow", func(t *testing.T) {
		svc := newService(t, "allow", &fakeRatings{err: down})
		if _, _, err := svc.Check(context.Background(), checker, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"}); err != nil {
			t.Fatalf("on_unavailable allow: %v", err)
		}
	})
}

func TestEligibilityVerdicts(t *testing.T) {
	svc := newService(t, "refuse", &fakeRatings{score: 650})
	ctx := context.Background()
	verdicts := func(e validation.Eligibility) string {
		var parts []string
		for _, r := range e.Rules {
			parts = append(parts, r.Rule+"="+r.Verdict)
		}
		return strings.Join(parts, " ")
	}
	e, err := svc.Eligibility(ctx, "C-1", "credit_card")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Allowed || verdicts(e) != "blocklist=pass case=pass rating=pass product_limit=pass exclusivity=pass family_limit=pass cooling_off=pass hold=pass" {
		t.Fatalf("free customer: allowed %v, %s", e.Allowed, verdicts(e))
	}
	if _, _, err := svc.Check(ctx, checker, validation.CheckInput{CustomerID: "C-1", Product: "personal_loan"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Block(ctx, admin, "C-1", "court order", time.Time{}); err != nil {
		t.Fatal(err)
	}
	e, err = svc.Eligibility(ctx, "C-1", "credit_card")
	if err != nil {
		t.Fatal(err)
	}
	// The block cancelled the loan hold; the rating is cached from the first dry run.
	if e.Allowed || verdicts(e) != "blocklist=fail case=pass rating=pass product_limit=pass exclusivity=pass family_limit=pass cooling_off=pass hold=pass" {
		t.Fatalf("blocked customer: allowed %v, %s", e.Allowed, verdicts(e))
	}
	if !strings.Contains(e.Violations[0].Detail, "court order") {
		t.Fatalf("blocked detail = %q", e.Violations[0].Detail)
	}
	_, _, err = svc.Check(ctx, checker, validation.CheckInput{CustomerID: "C-1", Product: "credit_card"})
	if !errors.Is(err, validation.ErrCustomerBlocked) {
		t.Fatalf("check after a refusing dry run = %v", err)
	}
	e, _ = svc.Eligibility(ctx, "C-2", "personal_loan")
	if verdicts(e) != "blocklist=pass case=pass rating=not_applicable product_limit=pass exclusivity=pass family_limit=pass cooling_off=pass hold=pass" {
		t.Fatalf("loan without min_rating: %s", verdicts(e))
	}
}

func TestBlockValidation(t *testing.T) {
	svc := newService(t, "refuse", &fakeRatings{score: 700})
	ctx := context.Background()
	if _, err := svc.Block(ctx, checker, "C-1", "x", time.Time{}); !errors.Is(err, validation.ErrForbidden) {
		t.Fatalf("checker blocking: %v", err)
	}
	if _, err := svc.Block(ctx, admin, "C-1", "", time.Time{}); !errors.Is(err, validation.ErrInvalidRequest) {
		t.Fatalf("empty reason: %v", err)
	}
	if _, err := svc.Block(ctx, admin, "C-1", "x", time.Now().Add(-time.Hour)); !errors.Is(err, validation.ErrInvalidRequest) {
		t.Fatalf("until in the past: %v", err)
	}
	// A control character would split the stored event at its separator
	// (\x1f) or be refused by the archive (NUL), jamming the outbox.
	for _, reason := range []string{"a\x1fb", "a\x00b", "line\nbreak", "bidi\u202e"} {
		if _, err := svc.Block(ctx, admin, "C-1", reason, time.Time{}); !errors.Is(err, validation.ErrInvalidRequest) {
			t.Fatalf("reason %q: %v, want invalid_request", reason, err)
		}
	}
	if err := svc.Unblock(ctx, admin, "C-1"); !errors.Is(err, validation.ErrNotFound) {
		t.Fatalf("unblock of a customer never blocked: %v", err)
	}
}
