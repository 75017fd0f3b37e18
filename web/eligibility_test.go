package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/web"
)

type fixedScore int

func (f fixedScore) Rating(context.Context, string) (int, error) { return int(f), nil }

func withRatings(r validation.RatingSource) apiOption {
	return func(cfg *web.Config, _ *string) { cfg.Service = &validation.Service{Ratings: r} }
}

const ratedPolicy = `
products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service], min_rating: 600 }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
exclusive: [[credit_card, personal_loan]]
rating: { url: "http://bureau.test/v1/ratings/{customer_id}" }
`

func TestRatingNumbersForAdminsOnly(t *testing.T) {
	a := newAPI(t, withPolicy(ratedPolicy), withRatings(fixedScore(480)))
	r := a.check(t, checkerKey, "C-1", "credit_card")
	wantStatus(t, r, http.StatusConflict, validation.ReasonRatingTooLow)
	v := r.body["violations"].([]any)[0].(map[string]any)
	if _, ok := v["rating"]; ok {
		t.Fatalf("a checker sees the score: %s", r.raw)
	}
	if _, ok := v["required_rating"]; ok {
		t.Fatalf("a checker sees the required score: %s", r.raw)
	}
	adm := a.check(t, adminKey, "C-1", "credit_card")
	wantStatus(t, adm, http.StatusConflict, validation.ReasonRatingTooLow)
	v = adm.body["violations"].([]any)[0].(map[string]any)
	if v["rating"] != float64(480) || v["required_rating"] != float64(600) {
		t.Fatalf("an admin does not see the numbers: %s", adm.raw)
	}
	el := a.do(t, "GET", "/v1/customers/C-1/eligibility?product=credit_card", checkerKey, nil)
	wantStatus(t, el, http.StatusOK)
	if el.str("decision") != "refuse" {
		t.Fatalf("eligibility = %s", el.raw)
	}
	for _, rule := range el.body["rules"].([]any) {
		for _, viol := range asList(rule.(map[string]any)["violations"]) {
			if _, ok := viol.(map[string]any)["rating"]; ok {
				t.Fatalf("eligibility shows a checker the score: %s", el.raw)
			}
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestBlockEndpoints(t *testing.T) {
	a := newAPI(t)
	held := a.mustCheck(t, "C-1", "credit_card")
	body := map[string]string{"reason": "identity theft reported"}
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-1/block", checkerKey, body), http.StatusForbidden, validation.ReasonForbidden)
	r := a.do(t, "PUT", "/v1/customers/C-1/block", adminKey, body)
	wantStatus(t, r, http.StatusOK)
	if r.str("cancelled_check_id") != held.str("check_id") {
		t.Fatalf("block = %s, want the live hold cancelled", r.raw)
	}
	refused := a.check(t, checkerKey, "C-1", "personal_loan")
	wantStatus(t, refused, http.StatusConflict, validation.ReasonCustomerBlocked)
	if got := refused.str("detail"); got == "" || !strings.Contains(got, "identity theft reported") {
		t.Fatalf("blocked detail = %q; checkers must see the reason", got)
	}
	cust := a.do(t, "GET", "/v1/customers/C-1", checkerKey, nil)
	if b, _ := cust.body["block"].(map[string]any); b == nil || b["reason"] != "identity theft reported" || b["by"] != "ops" {
		t.Fatalf("customer = %s", cust.raw)
	}
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-1/block", adminKey, map[string]string{"reason": "x", "until": "2001-01-01T00:00:00Z"}), http.StatusBadRequest, validation.ReasonInvalidRequest)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-1/block", adminKey, nil), http.StatusNoContent)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-1/block", adminKey, nil), http.StatusNotFound, validation.ReasonNotFound)
	a.mustCheck(t, "C-1", "personal_loan")
}

func TestEligibilityEndpoint(t *testing.T) {
	a := newAPI(t)
	el := a.do(t, "GET", "/v1/customers/C-1/eligibility?product=credit_card", checkerKey, nil)
	wantStatus(t, el, http.StatusOK)
	if el.str("decision") != "allow" || len(asList(el.body["rules"])) != 8 || el.str("policy_version") == "" || len(asList(el.body["violations"])) != 0 {
		t.Fatalf("eligibility of a free customer = %s", el.raw)
	}
	a.mustCheck(t, "C-1", "personal_loan")
	el = a.do(t, "GET", "/v1/customers/C-1/eligibility?product=credit_card", checkerKey, nil)
	if el.str("decision") != "refuse" {
		t.Fatalf("eligibility during a hold = %s", el.raw)
	}
	last := asList(el.body["rules"])[7].(map[string]any)
	if last["rule"] != "hold" || last["verdict"] != "fail" {
		t.Fatalf("hold verdict = %v", last)
	}
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-1/eligibility", checkerKey, nil), http.StatusBadRequest, validation.ReasonInvalidRequest)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-1/eligibility?product=boat", checkerKey, nil), http.StatusBadRequest, validation.ReasonInvalidRequest)
	// A dry run places nothing and audits nothing.
	audit := a.do(t, "GET", "/v1/customers/C-1/audit", checkerKey, nil)
	if n := len(asList(audit.body["events"])); n != 1 {
		t.Fatalf("audit has %d events after a check and two dry runs, want 1: %s", n, audit.raw)
	}
}
