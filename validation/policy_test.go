package validation_test

import (
	"slices"
	"strings"
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
		if r.HoldTTL != tt.ttl || !slices.Equal(r.Conflicts, tt.conflicts) || r.Max != 1 || r.Title != tt.title {
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

func TestParsePolicyRules(t *testing.T) {
	p, err := validation.ParsePolicy([]byte(`
products:
  credit_card: { hold_ttl: 1s, redeemers: [card-service], max: 2, title: "Gold card" }
  personal_loan: { redeemers: [loan-service] }
  mortgage: { redeemers: [loan-service] }
  savings: { redeemers: [ops] }
exclusive:
  - [credit_card, personal_loan]
  - [personal_loan, mortgage]
`))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := p.Rule("personal_loan")
	if got, want := r.Conflicts, []string{"credit_card", "mortgage"}; !slices.Equal(got, want) {
		t.Errorf("loan conflicts = %v, want %v (union of its groups)", got, want)
	}
	if r.HoldTTL != validation.DefaultHoldTTL {
		t.Errorf("default TTL = %v", r.HoldTTL)
	}
	card, _ := p.Rule("credit_card")
	if card.Max != 2 || card.Title != "Gold card" || card.HoldTTL != time.Second {
		t.Errorf("card rule = %+v", card)
	}
	if s, _ := p.Rule("savings"); len(s.Conflicts) != 0 {
		t.Errorf("savings conflicts = %v, want none", s.Conflicts)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "products:\n  credit_card: { redeemers: [a], colour: red }\n", "field colour not found"},
		{"unknown top-level key", "products:\n  a: { redeemers: [x] }\nmystery: 1\n", "field mystery not found"},
		{"unknown product in group", "products:\n  credit_card: { redeemers: [a] }\nexclusive:\n  - [credit_card, boat]\n", `line 4: exclusive group [credit_card boat] names unknown product "boat"`},
		{"negative ttl", "products:\n  credit_card: { hold_ttl: -5m, redeemers: [a] }\n", `line 2: product "credit_card": hold_ttl -5m0s is negative`},
		{"sub-second ttl", "products:\n  credit_card: { hold_ttl: 10ms, redeemers: [a] }\n", "under a second"},
		{"bad ttl", "products:\n  credit_card: { hold_ttl: soon, redeemers: [a] }\n", "soon"},
		{"no redeemers", "products:\n  credit_card: { hold_ttl: 5m }\n", "redeemers is empty"},
		{"negative max", "products:\n  credit_card: { redeemers: [a], max: -1 }\n", "max -1 is negative"},
		{"bad name", "products:\n  Credit-Card: { redeemers: [a] }\n", "lowercase"},
		{"one-product group", "products:\n  a: { redeemers: [x] }\nexclusive:\n  - [a]\n", "at least two"},
		{"no products", "exclusive: []\n", "no products"},
		{"empty", "", "empty document"},
		{"not yaml", "products: [: x", "policy:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := validation.ParsePolicy([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePolicy error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParsePolicyRatingErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"min_rating without provider", "products:\n  card: { redeemers: [a], min_rating: 600 }\n", `line 2: product "card": min_rating needs a rating provider`},
		{"min_rating out of range", "products:\n  card: { redeemers: [a], min_rating: 1200 }\nrating: { url: \"http://b/{customer_id}\" }\n", "outside 0..1000"},
		{"url without placeholder", "products:\n  card: { redeemers: [a] }\nrating: { url: \"http://b/x\" }\n", "line 3: rating: url must contain {customer_id}"},
		{"url not http", "products:\n  card: { redeemers: [a] }\nrating: { url: \"ftp://b/{customer_id}\" }\n", "http(s) URL"},
		{"bad on_unavailable", "products:\n  card: { redeemers: [a] }\nrating: { url: \"http://b/{customer_id}\", on_unavailable: maybe }\n", "refuse or allow"},
		{"negative timeout", "products:\n  card: { redeemers: [a] }\nrating: { url: \"http://b/{customer_id}\", timeout: -1s }\n", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := validation.ParsePolicy([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
	p, err := validation.ParsePolicy([]byte("products:\n  card: { redeemers: [a], min_rating: 600 }\nrating: { url: \"http://b/{customer_id}\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Rating.WithDefaults()
	if d.Timeout != validation.DefaultRatingTimeout || d.CacheTTL != 24*time.Hour || d.OnUnavailable != "refuse" || d.Breaker.Failures != 5 {
		t.Fatalf("defaults = %+v", d)
	}
}
