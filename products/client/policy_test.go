package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
)

const adminKey = "demo-admin-key" // ops: admin

// loanAfterCard is the demo policy with a cooling-off period: no personal
// loan within 90 days of a credit card's end.
const loanAfterCard = `
version: "try-1"
products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service] }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
exclusive:
  - [credit_card, personal_loan]
cooling_off:
  - { name: loan_after_card, after: [credit_card], products: [personal_loan], period: 90d }
`

func TestPolicyImpact(t *testing.T) {
	ctx := context.Background()
	portal := newClient(t, arbiterURL(), checkerKey, "")
	cards := newClient(t, arbiterURL(), cardKey, "card-service")
	ops := newClient(t, arbiterURL(), adminKey, "")

	// The customer closes a card and applies for a loan at once: the
	// candidate would have refused the loan's check.
	customer := newCustomer("T-impact")
	card, err := portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cards.Redeem(ctx, client.Redemption{Token: card.Token}); err != nil {
		t.Fatal(err)
	}
	if err := cards.Release(ctx, customer, "credit_card", card.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "personal_loan"}); err != nil {
		t.Fatal(err)
	}

	got, err := ops.PolicyImpact(ctx, []byte(loanAfterCard), client.ImpactOptions{Since: card.CreatedAt.Add(-time.Second), Examples: 5})
	if err != nil {
		t.Fatal(err)
	}
	rc := got.RecentChecks
	if got.PolicyVersion != "try-1" || got.CustomersScanned < 1 || rc.Total < 2 || rc.WouldRefuse < 1 || rc.ByReason[client.ReasonCoolingOff] < 1 {
		t.Fatalf("impact = %+v; want version try-1, the customer's two checks, the loan's refused (cooling_off)", got)
	}
	if rc.Share <= 0 || rc.Share > 1 || !rc.Since.Equal(card.CreatedAt.Add(-time.Second).Truncate(time.Second)) {
		t.Errorf("recent checks = %+v", rc)
	}

	t.Run("admins only", func(t *testing.T) {
		if _, err := portal.PolicyImpact(ctx, []byte(loanAfterCard), client.ImpactOptions{}); !errors.Is(err, client.ErrForbidden) {
			t.Fatalf("PolicyImpact as a checker = %v, want ErrForbidden", err)
		}
	})
	t.Run("a candidate that does not validate names the line", func(t *testing.T) {
		_, err := ops.PolicyImpact(ctx, []byte(loanAfterCard+"  - { name: x, after: [boat], products: [credit_card], period: 1d }\n"), client.ImpactOptions{})
		var e *client.Error
		if !errors.As(err, &e) || e.Reason != client.ReasonInvalidRequest || !strings.Contains(e.Detail, "line 10") {
			t.Fatalf("PolicyImpact = %v, want invalid_request naming line 10", err)
		}
	})
}

// TestRuleRefusalFields: a family_limit refusal's rule, limit, held and
// policy version reach the Error.
func TestRuleRefusalFields(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"type":"urn:arbiter:problem:family_limit","title":"t","status":409,"reason":"family_limit",
			"detail":"Customer holds 2 of 2 unsecured credit products: Credit card since 3 Mar 2024 and Store card since 5 Jun 2024 (rule unsecured_credit).",
			"policy_version":"2027-01","violations":[{"reason":"family_limit","detail":"d","rule":"unsecured_credit","limit":2,"note":"unsecured credit products",
			"held":[{"product":"credit_card","check_id":"chk_1","since":"2024-03-03T00:00:00Z"},{"product":"store_card","check_id":"chk_2","since":"2024-06-05T00:00:00Z","until":"2024-06-05T00:10:00Z"}]}]}`))
	}))
	defer srv.Close()
	_, err := newClient(t, srv.URL, checkerKey, "").Check(context.Background(), client.CheckRequest{CustomerID: "C-1", Product: "overdraft"})
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, client.ErrFamilyLimit) || e.PolicyVersion != "2027-01" || len(e.Violations) != 1 {
		t.Fatalf("Check = %v, want ErrFamilyLimit under 2027-01 with one violation", err)
	}
	v := e.Violations[0]
	if v.Rule != "unsecured_credit" || v.Limit != 2 || v.Note != "unsecured credit products" || len(v.Held) != 2 ||
		v.Held[1].Product != "store_card" || !v.Held[1].Until.Equal(time.Date(2024, 6, 5, 0, 10, 0, 0, time.UTC)) {
		t.Fatalf("violation = %+v", v)
	}
}
