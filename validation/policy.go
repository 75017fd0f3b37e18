package validation

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultHoldTTL is the hold TTL of a product whose policy sets none.
const DefaultHoldTTL = 5 * time.Minute

// Policy says which products exist, how long a hold on each lasts, who may
// redeem it, and the rules a customer's products must follow: exclusive
// groups, a per-product max, family limits, cooling-off periods and
// minimum ratings (the blocklist and open cases apply always). The yaml
// tags name each field in the policy file, which package policyfile
// decodes; this package imports no YAML library.
//
// A policy is one version of the rules, or, when Versions is set, a list
// of them, each a whole policy with its EffectiveFrom: At returns the
// version in force at a time, and every decision is made, and recorded,
// under the version in force at the decision's time (versions.go).
type Policy struct {
	Version       string             `yaml:"version"`        // the version's name, recorded on every decision; default a digest of its rules
	EffectiveFrom time.Time          `yaml:"effective_from"` // when the version comes into force (RFC 3339)
	Products      map[string]Product `yaml:"products"`
	Exclusive     [][]string         `yaml:"exclusive"`
	Limits        []FamilyLimit      `yaml:"limits"`      // at most N products of a family (rule_limit.go)
	CoolingOff    []CoolingOffRule   `yaml:"cooling_off"` // no product of a set within a period after another ended (rule_cooling.go)
	Rating        *RatingConfig      `yaml:"rating"`      // the credit bureau; required when a product sets min_rating
	Reconcile     *ReconcileConfig   `yaml:"reconcile"`   // the product systems' holdings feeds (policy_reconcile.go); nil: none
	// Versions, when set, are the policy's versions, sorted by
	// EffectiveFrom; the policy itself then has no rules of its own, only
	// Rating and Reconcile, which every version shares.
	Versions []*Policy `yaml:"versions"`

	rules map[string]Rule // compiled by Validate, per product
}

// RatingConfig declares the credit rating provider (a bureau answering
// GET url → {"score": 0..1000}). Zero values mean the defaults.
type RatingConfig struct {
	URL           string        `yaml:"url"`            // with {customer_id}, e.g. http://bureau/v1/ratings/{customer_id}
	Timeout       time.Duration `yaml:"timeout"`        // per call; default 300ms
	CacheTTL      time.Duration `yaml:"cache_ttl"`      // how long a score is trusted; default 24h
	OnUnavailable string        `yaml:"on_unavailable"` // "refuse" (default) or "allow"
	Breaker       struct {
		Failures int           `yaml:"failures"` // consecutive failures that open the breaker; default 5
		Cooldown time.Duration `yaml:"cooldown"` // how long it stays open; default 10s
	} `yaml:"breaker"`
}

// Defaults of RatingConfig.
const (
	DefaultRatingTimeout   = 300 * time.Millisecond
	DefaultRatingCacheTTL  = 24 * time.Hour
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 10 * time.Second
)

// WithDefaults returns the config with every zero value replaced by its default.
func (r RatingConfig) WithDefaults() RatingConfig {
	if r.Timeout == 0 {
		r.Timeout = DefaultRatingTimeout
	}
	if r.CacheTTL == 0 {
		r.CacheTTL = DefaultRatingCacheTTL
	}
	if r.OnUnavailable == "" {
		r.OnUnavailable = "refuse"
	}
	if r.Breaker.Failures == 0 {
		r.Breaker.Failures = DefaultBreakerFailures
	}
	if r.Breaker.Cooldown == 0 {
		r.Breaker.Cooldown = DefaultBreakerCooldown
	}
	return r
}

// Product is the policy of one product. The zero value of each field means
// its default.
type Product struct {
	Title     string        `yaml:"title"`      // human name; default from the id: "credit_card" → "Credit card"
	HoldTTL   time.Duration `yaml:"hold_ttl"`   // default DefaultHoldTTL
	Redeemers []string      `yaml:"redeemers"`  // client ids allowed to redeem (admins always may)
	Max       int           `yaml:"max"`        // how many of this product a customer may hold; default 1
	MinRating int           `yaml:"min_rating"` // the bureau score (0..1000) required; 0: no rating rule
}

// Rule is what a check or a redemption of one product must know, compiled
// from one policy version once (Policy.Rule): the Store applies it
// atomically, with one engine for every kind of rule (rules.go).
type Rule struct {
	Product   string
	Title     string
	HoldTTL   time.Duration
	Redeemers []string
	Version   string // the policy version it was compiled from, recorded on the decision

	// The rules of the product, in the order they are evaluated after the
	// blocklist, an open case and the rating: its limits (the product's
	// own max, its exclusive groups, then its families), then its
	// cooling-off periods.
	MinRating  int // the bureau score (0..1000) required; 0: no rating rule
	Limits     []Limit
	CoolingOff []CoolingOff
}

var (
	productName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)
	versionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$`)
)

// DefaultPolicy returns the built-in policy, the one arbiter runs with
// when none is configured: a credit card and a personal loan, exclusive.
func DefaultPolicy() *Policy {
	p := &Policy{
		Products: map[string]Product{
			"credit_card":   {HoldTTL: 5 * time.Minute, Redeemers: []string{"card-service"}},
			"personal_loan": {HoldTTL: 10 * time.Minute, Redeemers: []string{"loan-service"}},
		},
		Exclusive: [][]string{{"credit_card", "personal_loan"}},
	}
	if err := p.Validate(nil); err != nil {
		panic(err) // the built-in policy is tested
	}
	return p
}

// Lines says on which line of its source each part of a policy was
// written, so that Validate's errors name it: path is mapping keys and
// sequence indexes from the top ("products", "credit_card"; "exclusive",
// "0"). It returns 0 when it does not know; a nil Lines knows nothing.
type Lines func(path ...string) int

func (l Lines) of(path ...string) int {
	if l == nil {
		return 0
	}
	return l(path...)
}

// Validate checks every rule a policy must follow before arbiter runs
// with it: names, durations, counts, redeemers, the rating provider, the
// rules of each version and the reconcile: block; then it compiles each
// version's rules. Its error names the line lines gives for the offending
// part ("line 0" when unknown).
func (p *Policy) Validate(lines Lines) error {
	if len(p.Versions) > 0 {
		if err := p.validateVersions(lines); err != nil {
			return err
		}
	} else if err := p.validateVersion(lines, nil); err != nil {
		return err
	}
	if p.Rating != nil {
		if err := p.Rating.validate(lines.of("rating")); err != nil {
			return err
		}
	}
	if p.Reconcile != nil {
		if err := p.Reconcile.validate(p, lines); err != nil {
			return err
		}
	}
	return nil
}

// validateVersion checks one version's products and rules (at the path
// prefix at in the file: nil for a policy of one version) and compiles
// them.
func (p *Policy) validateVersion(lines Lines, at []string) error {
	line := func(path ...string) int { return lines.of(append(slices.Clone(at), path...)...) }
	if len(p.Products) == 0 {
		return fmt.Errorf("line %d: no products defined", line())
	}
	for _, name := range p.Names() {
		prod := p.Products[name]
		line := line("products", name)
		switch {
		case !productName.MatchString(name):
			return fmt.Errorf("line %d: product %q: names are lowercase letters, digits and _", line, name)
		case prod.HoldTTL < 0:
			return fmt.Errorf("line %d: product %q: hold_ttl %s is negative", line, name, prod.HoldTTL)
		case prod.HoldTTL > 0 && prod.HoldTTL < time.Second:
			return fmt.Errorf("line %d: product %q: hold_ttl %s is under a second", line, name, prod.HoldTTL)
		case len(prod.Redeemers) == 0:
			return fmt.Errorf("line %d: product %q: redeemers is empty: nobody could redeem its holds", line, name)
		case prod.Max < 0:
			return fmt.Errorf("line %d: product %q: max %d is negative", line, name, prod.Max)
		case prod.MinRating < 0 || prod.MinRating > 1000:
			return fmt.Errorf("line %d: product %q: min_rating %d is outside 0..1000", line, name, prod.MinRating)
		case prod.MinRating > 0 && p.Rating == nil:
			return fmt.Errorf("line %d: product %q: min_rating needs a rating provider (a top-level rating: block)", line, name)
		}
	}
	for i, g := range p.Exclusive {
		line := line("exclusive", strconv.Itoa(i))
		if len(g) < 2 {
			return fmt.Errorf("line %d: exclusive group %v needs at least two products", line, g)
		}
		for _, name := range g {
			if _, ok := p.Products[name]; !ok {
				return fmt.Errorf("line %d: exclusive group %v names unknown product %q", line, g, name)
			}
		}
	}
	names := map[string]bool{}
	for i, l := range p.Limits {
		if err := l.validate(p, names, line("limits", strconv.Itoa(i))); err != nil {
			return err
		}
	}
	for i, c := range p.CoolingOff {
		if err := c.validate(p, names, line("cooling_off", strconv.Itoa(i))); err != nil {
			return err
		}
	}
	switch {
	case p.Version == "":
		p.Version = p.digest()
	case !versionName.MatchString(p.Version):
		// It is written into every check, grant and event, and shadowed
		// in meta, whose values stay short.
		return fmt.Errorf("line %d: version %q: letters, digits and . _ : - only, at most 32", line("version"), p.Version)
	}
	p.compile()
	return nil
}

func (r *RatingConfig) validate(line int) error {
	u, err := url.Parse(r.URL)
	switch {
	case r.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("line %d: rating: url %q must be an http(s) URL", line, r.URL)
	case !strings.Contains(r.URL, "{customer_id}"):
		return fmt.Errorf("line %d: rating: url must contain {customer_id}", line)
	case r.Timeout < 0 || r.CacheTTL < 0 || r.Breaker.Cooldown < 0 || r.Breaker.Failures < 0:
		return fmt.Errorf("line %d: rating: durations and counts must not be negative", line)
	case r.OnUnavailable != "" && r.OnUnavailable != "refuse" && r.OnUnavailable != "allow":
		return fmt.Errorf("line %d: rating: on_unavailable %q must be refuse or allow", line, r.OnUnavailable)
	}
	return nil
}

// Names returns the product ids, sorted: of this version, or, on a policy
// of several versions, every product any version knows.
func (p *Policy) Names() []string {
	var names []string
	for _, v := range p.AllVersions() {
		for name := range v.Products {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// Knows reports whether the product is in the policy (in any version).
func (p *Policy) Knows(product string) bool {
	for _, v := range p.AllVersions() {
		if _, ok := v.Products[product]; ok {
			return true
		}
	}
	return false
}

// Rule returns the rule of a product in this version, and false for a
// product it does not know. On a policy of several versions it knows no
// product: ask the version in force (At).
func (p *Policy) Rule(product string) (Rule, bool) {
	if r, ok := p.rules[product]; ok {
		return r, true
	}
	if p.rules != nil {
		return Rule{}, false
	}
	return p.ruleOf(product) // a policy built in code and never validated
}

// compile derives every product's rule once.
func (p *Policy) compile() {
	p.rules = make(map[string]Rule, len(p.Products))
	for name := range p.Products {
		p.rules[name], _ = p.ruleOf(name)
	}
}

func (p *Policy) ruleOf(product string) (Rule, bool) {
	prod, ok := p.Products[product]
	if !ok {
		return Rule{}, false
	}
	r := Rule{
		Product:    product,
		Title:      prod.Title,
		HoldTTL:    prod.HoldTTL,
		Redeemers:  prod.Redeemers,
		Version:    p.Version,
		MinRating:  prod.MinRating,
		Limits:     p.limitsOf(product),
		CoolingOff: p.coolingOffOf(product),
	}
	if r.Title == "" {
		r.Title = Title(product)
	}
	if r.HoldTTL == 0 {
		r.HoldTTL = DefaultHoldTTL
	}
	return r, true
}

// IsRedeemer reports whether the client id may redeem the product.
func (p *Policy) IsRedeemer(product, client string) bool {
	prod, ok := p.Products[product]
	return ok && slices.Contains(prod.Redeemers, client)
}

// RedeemableBy returns the products the client may redeem, sorted.
func (p *Policy) RedeemableBy(client string) []string {
	var out []string
	for _, name := range p.Names() {
		if p.IsRedeemer(name, client) {
			out = append(out, name)
		}
	}
	return out
}

// TitleOf returns the human name of a product ("Credit card"), falling back
// to one derived from the id for products the policy no longer knows.
func (p *Policy) TitleOf(product string) string {
	if prod, ok := p.Products[product]; ok && prod.Title != "" {
		return prod.Title
	}
	for _, v := range slices.Backward(p.Versions) {
		if prod, ok := v.Products[product]; ok && prod.Title != "" {
			return prod.Title
		}
	}
	return Title(product)
}

// Title derives a human name from a product id: "personal_loan" → "Personal loan".
func Title(product string) string {
	s := strings.ReplaceAll(product, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
