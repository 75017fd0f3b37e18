package policyfile_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
)

// TestDefaultYAML: the policy file a newcomer starts from is the policy
// arbiter runs with when none is configured.
func TestDefaultYAML(t *testing.T) {
	p, err := policyfile.Parse([]byte(policyfile.DefaultYAML))
	if err != nil {
		t.Fatal(err)
	}
	if want := validation.DefaultPolicy(); !reflect.DeepEqual(p, want) {
		t.Fatalf("Parse(DefaultYAML) = %+v, want DefaultPolicy() %+v", p, want)
	}
}

func TestParseRules(t *testing.T) {
	p, err := policyfile.Parse([]byte(`
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
	if got, want := r.Conflicts(), []string{"credit_card", "mortgage"}; !slices.Equal(got, want) {
		t.Errorf("loan conflicts = %v, want %v (union of its groups)", got, want)
	}
	if r.HoldTTL != validation.DefaultHoldTTL {
		t.Errorf("default TTL = %v", r.HoldTTL)
	}
	card, _ := p.Rule("credit_card")
	if card.Limits[0].Max != 2 || card.Title != "Gold card" || card.HoldTTL != time.Second {
		t.Errorf("card rule = %+v", card)
	}
	if s, _ := p.Rule("savings"); len(s.Conflicts()) != 0 {
		t.Errorf("savings conflicts = %v, want none", s.Conflicts())
	}
}

func TestParseErrors(t *testing.T) {
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
			_, err := policyfile.Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseRatingErrors(t *testing.T) {
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
			_, err := policyfile.Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
	p, err := policyfile.Parse([]byte("products:\n  card: { redeemers: [a], min_rating: 600 }\nrating: { url: \"http://b/{customer_id}\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Rating.WithDefaults()
	if d.Timeout != validation.DefaultRatingTimeout || d.CacheTTL != 24*time.Hour || d.OnUnavailable != "refuse" || d.Breaker.Failures != 5 {
		t.Fatalf("defaults = %+v", d)
	}
}

// TestZeroDurationsKeepLines: a reconcile duration written 0 is read as
// on demand (interval) or the default (grace), in block and flow style,
// and the errors after it still name their own lines.
func TestZeroDurationsKeepLines(t *testing.T) {
	p, err := policyfile.Parse([]byte("reconcile: { interval: 0, grace: 0, timeout: 0 }\nproducts:\n  card: { redeemers: [a] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Reconcile; r.Interval != 0 || r.Grace != 0 || r.Timeout != 0 {
		t.Fatalf("reconcile = %+v, want zero durations", r)
	}
	_, err = policyfile.Parse([]byte("reconcile:\n  interval: 0\n  grace: 0\nproducts:\n  card: { redeemers: [a], hold_ttl: soon }\n"))
	if err == nil || !strings.Contains(err.Error(), "line 5: ") {
		t.Fatalf("error = %v, want it on line 5", err)
	}
}
