package policyfile_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
)

// versionsYAML has two versions, the later one written first: the first
// with an exclusive group only, the second with a family limit and two
// cooling-off rules, one period in days and one in hours.
const versionsYAML = `versions:
  - version: "2026-07"
    effective_from: 2026-07-01T00:00:00Z
    products:
      credit_card:   { redeemers: [card-service] }
      store_card:    { redeemers: [card-service] }
      overdraft:     { redeemers: [bank] }
      personal_loan: { redeemers: [loan-service] }
    limits:
      - { name: unsecured_credit, title: unsecured credit products, max: 2, products: [overdraft, credit_card, store_card] }
    cooling_off:
      - { name: loan_after_card, after: [store_card, credit_card], products: [personal_loan], period: 90d }
      - { name: card_after_loan, after: [personal_loan], products: [credit_card], period: 2160h }
  - version: "2026-01"
    effective_from: 2026-01-01T00:00:00Z
    products:
      credit_card:   { redeemers: [card-service] }
      store_card:    { redeemers: [card-service] }
      overdraft:     { redeemers: [bank] }
      personal_loan: { redeemers: [loan-service] }
    exclusive:
      - [credit_card, personal_loan]
`

// TestParseVersions: a file of versions parses, validates and compiles:
// At picks the version in force (the earliest before every
// effective_from), and each version's rules compile to its own limits and
// cooling-off periods.
func TestParseVersions(t *testing.T) {
	p, err := policyfile.Parse([]byte(versionsYAML))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Rule("credit_card"); ok {
		t.Error("the top of a file of versions knows a product; want it to know none")
	}
	jul := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "2026-01"},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "2026-01"},
		{jul.Add(-time.Nanosecond), "2026-01"},
		{jul, "2026-07"},
		{jul.AddDate(5, 0, 0), "2026-07"},
	} {
		if got := p.At(tt.at).Version; got != tt.want {
			t.Errorf("At(%s) = version %q, want %q", tt.at.Format(time.RFC3339Nano), got, tt.want)
		}
	}

	rule := func(at time.Time, product string) validation.Rule {
		t.Helper()
		r, ok := p.At(at).Rule(product)
		if !ok {
			t.Fatalf("version in force at %s has no %s", at, product)
		}
		return r
	}
	jan := jul.AddDate(0, -6, 0)
	family := validation.Limit{Kind: validation.LimitFamily, Name: "unsecured_credit", Title: "unsecured credit products", Max: 2,
		Products: []string{"credit_card", "overdraft", "store_card"}}
	tests := []struct {
		name    string
		rule    validation.Rule
		limits  []validation.Limit
		cooling []validation.CoolingOff
		version string
	}{
		{"the card in January: its max and its exclusive group", rule(jan, "credit_card"), []validation.Limit{
			{Kind: validation.LimitProduct, Max: 1, Products: []string{"credit_card"}},
			{Kind: validation.LimitExclusive, Products: []string{"personal_loan"}},
		}, nil, "2026-01"},
		{"the overdraft in January: its max only", rule(jan, "overdraft"), []validation.Limit{
			{Kind: validation.LimitProduct, Max: 1, Products: []string{"overdraft"}},
		}, nil, "2026-01"},
		{"the card in July: its max, its family, a cooling-off in hours", rule(jul, "credit_card"), []validation.Limit{
			{Kind: validation.LimitProduct, Max: 1, Products: []string{"credit_card"}}, family,
		}, []validation.CoolingOff{{Name: "card_after_loan", Period: 90 * 24 * time.Hour, After: []string{"personal_loan"}}}, "2026-07"},
		{"the loan in July: a cooling-off in days", rule(jul, "personal_loan"), []validation.Limit{
			{Kind: validation.LimitProduct, Max: 1, Products: []string{"personal_loan"}},
		}, []validation.CoolingOff{{Name: "loan_after_card", Period: 90 * 24 * time.Hour, After: []string{"credit_card", "store_card"}}}, "2026-07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.Limits; !reflect.DeepEqual(got, tt.limits) {
				t.Errorf("limits = %+v, want %+v", got, tt.limits)
			}
			if got := tt.rule.CoolingOff; !reflect.DeepEqual(got, tt.cooling) {
				t.Errorf("cooling-off = %+v, want %+v", got, tt.cooling)
			}
			if got := tt.rule.Version; got != tt.version {
				t.Errorf("version = %q, want %q", got, tt.version)
			}
		})
	}
	if got, want := p.KeepEnded(), 90*24*time.Hour; got != want {
		t.Errorf("KeepEnded = %v, want %v", got, want)
	}
}

// TestPeriodDecodes: a cooling-off period reaches validation.Period
// through yaml.v3 as the policy file writes it (UnmarshalText), in days
// or as a Go duration.
func TestPeriodDecodes(t *testing.T) {
	for _, tt := range []struct {
		period string
		want   time.Duration
	}{
		{"90d", 90 * 24 * time.Hour},
		{"2160h", 2160 * time.Hour},
		{"36h30m", 36*time.Hour + 30*time.Minute},
		{`"1d"`, 24 * time.Hour},
	} {
		p, err := policyfile.Parse([]byte(coolingProducts + "cooling_off:\n  - { name: c, after: [a], products: [b], period: " + tt.period + " }\n"))
		if err != nil {
			t.Fatalf("period %s: %v", tt.period, err)
		}
		if got := p.CoolingOff[0].Period.Duration(); got != tt.want {
			t.Errorf("period %s = %v, want %v", tt.period, got, tt.want)
		}
	}
}

const coolingProducts = "products:\n  a: { redeemers: [x] }\n  b: { redeemers: [x] }\n"

// TestParseRuleErrors: a mistake in a limit, a cooling-off rule or a
// version is an error naming its line.
func TestParseRuleErrors(t *testing.T) {
	twoVersions := func(from1, from2, products2 string) string {
		return "versions:\n" +
			"  - version: a\n    effective_from: " + from1 + "\n    products:\n      p: { redeemers: [x] }\n" +
			"  - version: b\n    effective_from: " + from2 + "\n" + products2
	}
	tests := []struct{ name, yaml, want string }{
		{"unknown product in a limit", coolingProducts + "limits:\n  - { name: l, max: 1, products: [a, boat] }\n",
			`line 5: limit "l" names unknown product "boat"`},
		{"duplicate rule name", coolingProducts + "limits:\n  - { name: r, max: 1, products: [a, b] }\ncooling_off:\n  - { name: r, after: [a], products: [b], period: 1d }\n",
			`line 7: cooling_off "r": another rule has this name`},
		{"duplicate limit name", coolingProducts + "limits:\n  - { name: r, max: 1, products: [a, b] }\n  - { name: r, max: 2, products: [a, b] }\n",
			`line 6: limit "r": another rule has this name`},
		{"max 0", coolingProducts + "limits:\n  - { name: l, max: 0, products: [a, b] }\n",
			`line 5: limit "l": max 0 must be at least 1`},
		{"period in weeks", coolingProducts + "cooling_off:\n  - name: c\n    after: [a]\n    products: [b]\n    period: 3 weeks\n",
			`line 8: cooling_off "c": period "3 weeks": write days (90d) or hours (2160h)`},
		{"period in weeks in a version", twoVersions("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z",
			"    products:\n      p: { redeemers: [x] }\n    cooling_off:\n      - { name: c, after: [p], products: [p], period: 3 weeks }\n"),
			`line 11: cooling_off "c": period "3 weeks"`},
		{"a version without products", twoVersions("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z", ""),
			`line 6: no products defined`},
		{"products next to versions", "products:\n  p: { redeemers: [x] }\n" + twoVersions("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z", "    products:\n      p: { redeemers: [x] }\n"),
			`line 3: versions: the top of the file then holds only rating: and reconcile:`},
		{"two versions from the same time", twoVersions("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "    products:\n      p: { redeemers: [x] }\n"),
			`line 6: version "b": another version comes into force at 2026-01-01T00:00:00Z too`},
		{"a limit in a version names an unknown product", twoVersions("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z",
			"    products:\n      p: { redeemers: [x] }\n    limits:\n      - { name: l, max: 1, products: [q] }\n"),
			`line 11: limit "l" names unknown product "q"`},
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
