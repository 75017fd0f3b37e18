package validation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The cooling-off rule: no product of a set within a period after a
// product of another set ended (its grant was released: closed by the
// product system, or by reconciliation). A store keeps, per customer, when
// each product last ended, for the longest period of any version
// (Policy.LongestCoolingOff) and at least for the audit's retention, and
// the rule reads only that: the latest end of each product in After.

// CoolingOffRule is a cooling-off rule as the policy file writes it, under
// cooling_off:.
type CoolingOffRule struct {
	Name     string   `yaml:"name"`     // the rule's name, recorded on its refusals
	After    []string `yaml:"after"`    // the products whose end starts the period
	Products []string `yaml:"products"` // the products refused during it
	Period   Period   `yaml:"period"`   // "90d", "2160h"; at most MaxCoolingOff
}

// MaxCoolingOff bounds a cooling-off period, and so what a store keeps of
// the ends of a customer's products.
const MaxCoolingOff = 10 * 365 * 24 * time.Hour

// Period is a duration written in days ("90d") or as Go writes durations
// ("2160h", "36h30m").
type Period time.Duration

// Duration returns the period as a time.Duration.
func (p Period) Duration() time.Duration { return time.Duration(p) }

// UnmarshalText reads "90d" or a Go duration.
func (p *Period) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return fmt.Errorf("period %q: days are a whole number, as in 90d", s)
		}
		*p = Period(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("period %q: write days (90d) or hours (2160h)", s)
	}
	*p = Period(d)
	return nil
}

// MarshalText writes the period in days when it is whole days.
func (p Period) MarshalText() ([]byte, error) {
	d := time.Duration(p)
	if d > 0 && d%(24*time.Hour) == 0 {
		return []byte(strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"), nil
	}
	return []byte(d.String()), nil
}

// CoolingOff is a compiled cooling-off rule of one product.
type CoolingOff struct {
	Name   string
	Period time.Duration
	After  []string // sorted
}

func (c CoolingOffRule) validate(p *Policy, names map[string]bool, line int) error {
	switch {
	case !ruleName.MatchString(c.Name):
		return fmt.Errorf("line %d: cooling_off %q: names are lowercase letters, digits and _", line, c.Name)
	case names[c.Name]:
		return fmt.Errorf("line %d: cooling_off %q: another rule has this name", line, c.Name)
	case c.Period.Duration() < time.Second || c.Period.Duration() > MaxCoolingOff:
		return fmt.Errorf("line %d: cooling_off %q: period %s is outside 1s..%dd", line, c.Name, c.Period.Duration(), MaxCoolingOff/(24*time.Hour))
	case len(c.After) == 0 || len(c.Products) == 0:
		return fmt.Errorf("line %d: cooling_off %q: after and products must each name a product", line, c.Name)
	}
	for _, name := range slices.Concat(c.After, c.Products) {
		if _, ok := p.Products[name]; !ok {
			return fmt.Errorf("line %d: cooling_off %q names unknown product %q", line, c.Name, name)
		}
	}
	names[c.Name] = true
	return nil
}

// coolingOffOf compiles the cooling-off rules that refuse the product, in
// the order the file lists them.
func (p *Policy) coolingOffOf(product string) []CoolingOff {
	var out []CoolingOff
	for _, c := range p.CoolingOff {
		if !slices.Contains(c.Products, product) {
			continue
		}
		after := slices.Clone(c.After)
		slices.Sort(after)
		out = append(out, CoolingOff{Name: c.Name, Period: c.Period.Duration(), After: slices.Compact(after)})
	}
	return out
}

// evalCoolingOff appends the violation of one cooling-off rule, if a
// product of c.After ended less than c.Period before now: the one that
// ended last (the one whose period ends last; by name on a tie).
func evalCoolingOff(vs []Violation, c CoolingOff, ended map[string]time.Time, now time.Time) []Violation {
	var last string
	for _, p := range c.After {
		at, ok := ended[p]
		if !ok || !now.Before(at.Add(c.Period)) {
			continue
		}
		if last == "" || at.After(ended[last]) {
			last = p
		}
	}
	if last == "" {
		return vs
	}
	at := ended[last]
	return append(vs, Violation{Reason: ReasonCoolingOff, Rule: c.Name, Product: last, Since: at, Until: at.Add(c.Period)})
}

// coolingOffSentence words a cooling_off violation: "Customer's Credit
// card ended on 3 Dec 2024: rule loan_after_card asks 90 days before this
// product, until 3 Mar 2025."
func coolingOffSentence(v Violation, title func(string) string) string {
	return fmt.Sprintf("Customer's %s ended on %s: rule %s asks %s before this product, until %s.",
		title(v.Product), v.Since.UTC().Format(DateLayout), v.Rule, periodWords(v.Until.Sub(v.Since)), v.Until.UTC().Format(DateLayout))
}

// periodWords says a period as a person would: "90 days", "36h0m0s".
func periodWords(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := d / (24 * time.Hour); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	}
	return d.String()
}
