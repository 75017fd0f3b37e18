package web_test

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// impactLivePolicy is the policy in force: four products, no limit
// between them.
const impactLivePolicy = `
products:
  credit_card:   { title: Credit card,   hold_ttl: 10m, redeemers: [card-service] }
  store_card:    { title: Store card,    hold_ttl: 10m, redeemers: [card-service] }
  overdraft:     { title: Overdraft,     hold_ttl: 10m, redeemers: [card-service] }
  personal_loan: { title: Personal loan, hold_ttl: 10m, redeemers: [loan-service] }
`

// impactCandidate adds a family limit (at most 2 unsecured credit
// products) and a cooling-off period (no loan within 90 days of a card's
// end).
const impactCandidate = `
version: "2027-01"
products:
  credit_card:   { title: Credit card,   hold_ttl: 10m, redeemers: [card-service] }
  store_card:    { title: Store card,    hold_ttl: 10m, redeemers: [card-service] }
  overdraft:     { title: Overdraft,     hold_ttl: 10m, redeemers: [card-service] }
  personal_loan: { title: Personal loan, hold_ttl: 10m, redeemers: [loan-service] }
limits:
  - { name: unsecured_credit, title: unsecured credit products, max: 2, products: [credit_card, store_card, overdraft] }
cooling_off:
  - { name: loan_after_card, after: [credit_card], products: [personal_loan], period: 90d }
`

// postImpact sends a candidate policy as YAML.
func (a *api) postImpact(tb testing.TB, key, query, candidate string, contentType ...string) reply {
	tb.Helper()
	header := []string{"Authorization", "Bearer " + key, "Content-Type", "application/yaml"}
	if len(contentType) > 0 {
		header[3] = contentType[0]
	}
	return a.doWith(tb, a.client, "POST", "/v1/policy/impact"+query, candidate, header...)
}

// takes checks the product for the customer and redeems it.
func (a *api) takes(tb testing.TB, customer, product string) {
	tb.Helper()
	r := a.mustCheck(tb, customer, product)
	key := cardKey
	if product == "personal_loan" {
		key = loanKey
	}
	wantStatus(tb, a.do(tb, "POST", "/v1/redemptions", key, map[string]string{"token": r.str("token")}), http.StatusCreated)
}

// impactLedger: A takes three unsecured products (one more than the
// candidate allows), B two, C a card it then closes, and then checks a
// loan (still held); D's three were imported a year ago (no recent check).
func impactLedger(tb testing.TB, a *api) {
	tb.Helper()
	for _, p := range []string{"credit_card", "store_card", "overdraft"} {
		a.takes(tb, "IMP-A", p)
	}
	for _, p := range []string{"credit_card", "store_card"} {
		a.takes(tb, "IMP-B", p)
	}
	a.takes(tb, "IMP-C", "credit_card")
	wantStatus(tb, a.do(tb, "DELETE", "/v1/customers/IMP-C/products/credit_card", cardKey, nil), http.StatusNoContent)
	a.mustCheck(tb, "IMP-C", "personal_loan")
	for i, p := range []string{"credit_card", "store_card", "overdraft"} {
		at := time.Now().AddDate(-1, 0, i).UTC().Format(time.RFC3339)
		wantStatus(tb, a.do(tb, "PUT", "/v1/customers/IMP-D/products/"+p, adminKey, map[string]string{"granted_at": at}), http.StatusCreated)
	}
}

func TestPolicyImpact(t *testing.T) {
	backends := map[string]func(testing.TB) redis.UniversalClient{
		"redis": func(tb testing.TB) redis.UniversalClient { return redistest.MustStartRedis(tb).Client(tb) },
		"miniredis": func(tb testing.TB) redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: redistest.MustStartMiniredis(tb).Addr()})
		},
	}
	for name, client := range backends {
		t.Run(name, func(t *testing.T) {
			a := newAPIOn(t, client(t), withPolicy(impactLivePolicy))
			a.client.Transport = validateAgainstSpec(t, a.client.Transport)
			impactLedger(t, a)
			r := a.postImpact(t, adminKey, "?examples=1", impactCandidate)
			wantStatus(t, r, http.StatusOK)
			if r.str("policy_version") != "2027-01" || r.body["customers_scanned"] != 4.0 || r.body["customers_in_violation"] != 2.0 {
				t.Fatalf("report = %s; want version 2027-01, 4 customers scanned, 2 in violation (A and D)", r.raw)
			}
			examples, _ := r.body["examples"].([]any)
			if len(examples) != 1 {
				t.Fatalf("examples = %v, want one (examples=1)", r.body["examples"])
			}
			ex := examples[0].(map[string]any)
			vs, _ := ex["violations"].([]any)
			if ex["customer_id"] != "IMP-A" || len(vs) != 1 {
				t.Fatalf("example = %v, want IMP-A with one violation", ex)
			}
			v := vs[0].(map[string]any)
			grant, _ := v["grant"].(map[string]any)
			if v["reason"] != "family_limit" || v["rule"] != "unsecured_credit" || v["limit"] != 2.0 || len(v["held"].([]any)) != 2 || grant["product"] != "overdraft" {
				t.Errorf("violation = %v, want family_limit unsecured_credit, limit 2, 2 held, at the overdraft", v)
			}
			if d, _ := v["detail"].(string); !strings.HasPrefix(d, "Customer holds 2 of 2 unsecured credit products: Credit card since ") {
				t.Errorf("detail = %q, not worded as the refusal", d)
			}

			rc := r.body["recent_checks"].(map[string]any)
			byReason, _ := rc["by_reason"].(map[string]any)
			if rc["total"] != 7.0 || rc["would_refuse"] != 2.0 || math.Abs(rc["share"].(float64)-2.0/7) > 1e-9 ||
				byReason["family_limit"] != 1.0 || byReason["cooling_off"] != 1.0 || len(byReason) != 2 {
				t.Fatalf("recent checks = %v; want 7, 2 refused (A's overdraft: family_limit, C's loan: cooling_off)", rc)
			}

			// The live policy refuses none of it: the same ledger, nothing.
			r = a.postImpact(t, adminKey, "", impactLivePolicy)
			wantStatus(t, r, http.StatusOK)
			rc = r.body["recent_checks"].(map[string]any)
			if r.body["customers_in_violation"] != 0.0 || rc["would_refuse"] != 0.0 || rc["total"] != 7.0 {
				t.Fatalf("live policy report = %s, want no violation and no refusal of 7 checks", r.raw)
			}
		})
	}
}

func TestPolicyImpactRefusals(t *testing.T) {
	a := newAPI(t, withPolicy(impactLivePolicy))
	a.client.Transport = validateAgainstSpec(t, a.client.Transport)
	t.Run("not an admin", func(t *testing.T) {
		wantStatus(t, a.postImpact(t, checkerKey, "", impactCandidate), http.StatusForbidden, validation.ReasonForbidden)
		wantStatus(t, a.postImpact(t, cardKey, "", impactCandidate), http.StatusForbidden, validation.ReasonForbidden)
	})
	for _, tc := range []struct {
		name, query, body, contentType, want string
	}{
		{"not YAML", "", "products: [unclosed", "", "line 1"},
		{"an unknown field in a rule", "", impactCandidate + "  - { name: other, max: 1, products: [gold_card] }\n", "", "line 12"},
		{"an unknown key", "", "produkts: {}\n", "", "line 1"},
		{"empty", "", "", "", "empty"},
		{"not a policy media type", "", impactCandidate, "application/xml", "Content-Type"},
		{"a malformed at", "?at=tomorrow", impactCandidate, "", "at must be an RFC 3339 time"},
		{"too many examples", "?examples=101", impactCandidate, "", "examples must be"},
		{"since in the future", "?since=2999-01-01T00:00:00Z", impactCandidate, "", "since"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r reply
			if tc.contentType != "" {
				r = a.postImpact(t, adminKey, tc.query, tc.body, tc.contentType)
			} else {
				r = a.postImpact(t, adminKey, tc.query, tc.body)
			}
			wantStatus(t, r, http.StatusBadRequest, validation.ReasonInvalidRequest)
			if !strings.Contains(r.str("detail"), tc.want) {
				t.Fatalf("detail = %q, want it to say %q", r.str("detail"), tc.want)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		r := a.postImpact(t, adminKey, "", impactCandidate+"#"+strings.Repeat("x", 64<<10)+"\n")
		wantStatus(t, r, http.StatusRequestEntityTooLarge)
	})
}

// TestRuleRefusalsShowTheRule: under a policy with a family limit and a
// cooling-off period, a refusal names the rule (rule, limit, held) and the
// policy version, and every decision records the version: the check, its
// token, the eligibility dry run and the audit.
func TestRuleRefusalsShowTheRule(t *testing.T) {
	a := newAPI(t, withPolicy(impactCandidate))
	a.client.Transport = validateAgainstSpec(t, a.client.Transport)
	a.takes(t, "RR-1", "credit_card")
	ch := a.mustCheck(t, "RR-1", "store_card")
	if ch.str("policy_version") != "2027-01" {
		t.Fatalf("check = %s, want policy_version 2027-01", ch.raw)
	}
	claims, err := a.issuer.Verify(ch.str("token"), "card-service")
	if err != nil || claims.PolicyVersion != "2027-01" {
		t.Fatalf("token claims = %+v, %v; want policy_version 2027-01", claims, err)
	}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": ch.str("token")}), http.StatusCreated)

	r := a.check(t, checkerKey, "RR-1", "overdraft")
	wantStatus(t, r, http.StatusConflict, validation.ReasonFamilyLimit)
	vs, _ := r.body["violations"].([]any)
	if r.str("policy_version") != "2027-01" || len(vs) != 1 {
		t.Fatalf("refusal = %s, want one violation under 2027-01", r.raw)
	}
	v := vs[0].(map[string]any)
	held, _ := v["held"].([]any)
	if v["rule"] != "unsecured_credit" || v["limit"] != 2.0 || len(held) != 2 || held[0].(map[string]any)["product"] != "credit_card" {
		t.Errorf("violation = %v, want rule unsecured_credit, limit 2, the card and the store card held", v)
	}
	if !strings.HasPrefix(r.str("detail"), "Customer holds 2 of 2 unsecured credit products: Credit card since ") {
		t.Errorf("detail = %q", r.str("detail"))
	}

	el := a.do(t, "GET", "/v1/customers/RR-1/eligibility?product=overdraft", checkerKey, nil)
	wantStatus(t, el, http.StatusOK)
	if el.str("policy_version") != "2027-01" || el.str("decision") != "refuse" {
		t.Errorf("eligibility = %s, want refuse under 2027-01", el.raw)
	}

	wantStatus(t, a.do(t, "DELETE", "/v1/customers/RR-1/products/credit_card", cardKey, nil), http.StatusNoContent)
	r = a.check(t, checkerKey, "RR-1", "personal_loan")
	wantStatus(t, r, http.StatusConflict, validation.ReasonCoolingOff)
	if v := r.body["violations"].([]any)[0].(map[string]any); v["rule"] != "loan_after_card" || v["product"] != "credit_card" || v["until"] == nil {
		t.Errorf("cooling_off violation = %v", v)
	}

	audit := a.do(t, "GET", "/v1/customers/RR-1/audit?type=checked,refused,redeemed", checkerKey, nil)
	wantStatus(t, audit, http.StatusOK)
	events, _ := audit.body["events"].([]any)
	if len(events) == 0 {
		t.Fatalf("audit = %s", audit.raw)
	}
	for _, e := range events {
		if e := e.(map[string]any); e["policy_version"] != "2027-01" {
			t.Errorf("event %v lacks policy_version 2027-01", e)
		}
	}
}
