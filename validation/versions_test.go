package validation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// version is a whole policy version of one product, effective from from,
// with the cooling-off periods given (in days).
func version(name string, from time.Time, coolingDays ...int) *validation.Policy {
	v := &validation.Policy{Version: name, EffectiveFrom: from, Products: map[string]validation.Product{
		"credit_card":   {Redeemers: []string{"card-service"}},
		"personal_loan": {Redeemers: []string{"loan-service"}},
	}}
	for i, d := range coolingDays {
		v.CoolingOff = append(v.CoolingOff, validation.CoolingOffRule{Name: "c" + string(rune('a'+i)), After: []string{"credit_card"},
			Products: []string{"personal_loan"}, Period: validation.Period(time.Duration(d) * day)})
	}
	return v
}

// TestPolicyAt: the version in force at a time is the one with the latest
// effective_from not after it, and the earliest decides before every
// effective_from; versions are sorted whatever the order written.
func TestPolicyAt(t *testing.T) {
	jan, jul := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	p := &validation.Policy{Versions: []*validation.Policy{version("jul", jul), version("oct", oct), version("jan", jan)}}
	if err := p.Validate(nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at   time.Time
		want string
	}{
		{time.Time{}, "jan"},
		{jan.AddDate(-3, 0, 0), "jan"},
		{jan, "jan"},
		{jul.Add(-time.Nanosecond), "jan"},
		{jul, "jul"},
		{oct.Add(-time.Nanosecond), "jul"},
		{oct, "oct"},
		{oct.AddDate(10, 0, 0), "oct"},
	}
	for _, tt := range tests {
		if got := p.At(tt.at).Version; got != tt.want {
			t.Errorf("At(%s) = %q, want %q", tt.at.Format(time.RFC3339Nano), got, tt.want)
		}
	}
	if got := p.Latest().Version; got != "oct" {
		t.Errorf("Latest() = %q, want oct", got)
	}
	if r, ok := p.At(jul).Rule("credit_card"); !ok || r.Version != "jul" {
		t.Errorf("the card's rule in July = %+v, %v; want it compiled from version jul", r, ok)
	}
	// A policy of one version is its own version at any time.
	single := version("only", time.Time{})
	if err := single.Validate(nil); err != nil {
		t.Fatal(err)
	}
	if single.At(jan) != single || single.Latest() != single || len(single.AllVersions()) != 1 {
		t.Error("a policy without versions is not its own only version")
	}
}

// TestUnnamedVersions: a version without a name is named by a digest of
// its rules, so two different rule sets never share a name and the same
// rules always get the same one.
func TestUnnamedVersions(t *testing.T) {
	a, b, a2 := version("", time.Time{}), version("", time.Time{}, 30), version("", time.Time{})
	for _, v := range []*validation.Policy{a, b, a2} {
		if err := v.Validate(nil); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(a.Version, "sha256:") || a.Version == b.Version || a.Version != a2.Version {
		t.Fatalf("versions = %q, %q, %q; want digests, distinct for distinct rules, equal for equal ones", a.Version, b.Version, a2.Version)
	}
}

// TestKeepEnded: a store keeps a product's end for the longest
// cooling-off period of any version, and at least MinKeepEnded.
func TestKeepEnded(t *testing.T) {
	jan, jul := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		p    *validation.Policy
		want time.Duration
	}{
		{"no cooling-off", version("v", jan), validation.MinKeepEnded},
		{"a period shorter than the minimum", version("v", jan, 30), validation.MinKeepEnded},
		{"the longest of one version", version("v", jan, 30, 120), 120 * day},
		{"the longest of any version, even one not in force yet", &validation.Policy{Versions: []*validation.Policy{
			version("a", jan, 100), version("b", jul, 200, 10)}}, 200 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(nil); err != nil {
				t.Fatal(err)
			}
			if got := tt.p.KeepEnded(); got != tt.want {
				t.Fatalf("KeepEnded() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPeriodText: a period reads days or a Go duration and writes whole
// days in days, and what it writes reads back the same.
func TestPeriodText(t *testing.T) {
	tests := []struct {
		in, out string
		want    time.Duration
	}{
		{"90d", "90d", 90 * day},
		{"1d", "1d", day},
		{"2160h", "90d", 2160 * time.Hour},
		{"36h30m", "36h30m0s", 36*time.Hour + 30*time.Minute},
		{"90s", "1m30s", 90 * time.Second},
	}
	for _, tt := range tests {
		var p validation.Period
		if err := p.UnmarshalText([]byte(tt.in)); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", tt.in, err)
		}
		if p.Duration() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, p.Duration(), tt.want)
		}
		out, err := p.MarshalText()
		if err != nil || string(out) != tt.out {
			t.Errorf("MarshalText(%v) = %q, %v; want %q", p.Duration(), out, err, tt.out)
		}
		var back validation.Period
		if err := back.UnmarshalText(out); err != nil || back != p {
			t.Errorf("round trip of %q: %q reads %v, %v", tt.in, out, back.Duration(), err)
		}
	}
	for _, bad := range []string{"3 weeks", "d", "1.5d", "", "ninety days"} {
		var p validation.Period
		if err := p.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = %v, want an error", bad, p.Duration())
		}
	}
}

// TestVersionNames: a version's name is written into every check, grant
// and event (fields joined by \x1f) and shadowed in meta, whose values
// stay short: a name that could break either is refused.
func TestVersionNames(t *testing.T) {
	for name, ok := range map[string]bool{"2026-07": true, "v1.2_rc:3": true, "sha256:0123456789ab": true,
		"a\x1fb": false, strings.Repeat("v", 33): false, "-v1": false, "v 1": false} {
		p := validation.DefaultPolicy()
		p.Version = name
		if err := p.Validate(nil); (err == nil) != ok {
			t.Errorf("version %q: Validate = %v, want ok %v", name, err, ok)
		}
	}
}
