package validation_test

import (
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

func TestDefaultPolicy(t *testing.T) {
	p := validation.DefaultPolicy()
	if got, want := p.Names(), []string{"credit_card", "personal_loan"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	tests := []struct {
		product   string
		ttl       time.Duration
		conflicts []string
		redeemer  string
		title     string
	}{
		{"credit_card", 5 * time.Minute, []string{"personal_loan"}, "card-service", "Credit card"},
		{"personal_loan", 10 * time.Minute, []string{"credit_card"}, "loan-service", "Personal loan"},
	}
	for _, tt := range tests {
		r, ok := p.Rule(tt.product)
		if !ok {
			t.Fatalf("Rule(%s) missing", tt.product)
		}
		if r.HoldTTL != tt.ttl || !slices.Equal(r.Conflicts(), tt.conflicts) || r.Limits[0].Max != 1 || r.Title != tt.title {
			t.Errorf("Rule(%s) = %+v", tt.product, r)
		}
		if !p.IsRedeemer(tt.product, tt.redeemer) || p.IsRedeemer(tt.product, "branch-portal") {
			t.Errorf("IsRedeemer(%s) wrong", tt.product)
		}
	}
	if _, ok := p.Rule("mortgage"); ok {
		t.Error("Rule(mortgage) found an unknown product")
	}
	if got := p.RedeemableBy("card-service"); !slices.Equal(got, []string{"credit_card"}) {
		t.Errorf("RedeemableBy(card-service) = %v", got)
	}
}
