package validation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPolicyYAML is the policy arbiter runs with when none is configured.
const DefaultPolicyYAML = `products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service] }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
exclusive:
  - [credit_card, personal_loan]
`

// DefaultHoldTTL is the hold TTL of a product whose policy sets none.
const DefaultHoldTTL = 5 * time.Minute

// Policy says which products exist, how long a hold on each lasts, who may
// redeem it, and which products exclude each other.
type Policy struct {
	Products  map[string]Product `yaml:"products"`
	Exclusive [][]string         `yaml:"exclusive"`
}

// Product is the policy of one product. The zero value of each field means
// its default.
type Product struct {
	Title     string        `yaml:"title"`     // human name; default from the id: "credit_card" → "Credit card"
	HoldTTL   time.Duration `yaml:"hold_ttl"`  // default DefaultHoldTTL
	Redeemers []string      `yaml:"redeemers"` // client ids allowed to redeem (admins always may)
	Max       int           `yaml:"max"`       // how many of this product a customer may hold; default 1
}

// Rule is what a check or a redemption of one product must know, derived
// from the policy once: the Store applies it atomically.
type Rule struct {
	Product   string
	Title     string
	HoldTTL   time.Duration
	Max       int
	Conflicts []string // products sharing an exclusive group with Product, sorted
	Redeemers []string
}

var productName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// DefaultPolicy returns the built-in policy (DefaultPolicyYAML).
func DefaultPolicy() *Policy {
	p, err := ParsePolicy([]byte(DefaultPolicyYAML))
	if err != nil {
		panic(err) // the built-in policy is tested
	}
	return p
}

// ParsePolicy decodes and validates a YAML policy. Unknown keys, unknown
// products in exclusive groups, negative durations and malformed names are
// errors that name the line.
func ParsePolicy(data []byte) (*Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("policy: empty document")
		}
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := p.validate(&root); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &p, nil
}

func (p *Policy) validate(root *yaml.Node) error {
	if len(p.Products) == 0 {
		return errors.New("no products defined")
	}
	for name, prod := range p.Products {
		line := nodeLine(root, "products", name)
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
		}
	}
	groups := nodeAt(root, "exclusive")
	for i, g := range p.Exclusive {
		line := 0
		if groups != nil && i < len(groups.Content) {
			line = groups.Content[i].Line
		}
		if len(g) < 2 {
			return fmt.Errorf("line %d: exclusive group %v needs at least two products", line, g)
		}
		for _, name := range g {
			if _, ok := p.Products[name]; !ok {
				return fmt.Errorf("line %d: exclusive group %v names unknown product %q", line, g, name)
			}
		}
	}
	return nil
}

// nodeAt walks mapping keys from the document root; nil when absent.
func nodeAt(root *yaml.Node, path ...string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

func nodeLine(root *yaml.Node, path ...string) int {
	if n := nodeAt(root, path...); n != nil {
		return n.Line
	}
	return 0
}

// Names returns the product ids, sorted.
func (p *Policy) Names() []string {
	names := make([]string, 0, len(p.Products))
	for name := range p.Products {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Rule returns the rule of a product, and false for a product the policy
// does not know.
func (p *Policy) Rule(product string) (Rule, bool) {
	prod, ok := p.Products[product]
	if !ok {
		return Rule{}, false
	}
	r := Rule{
		Product:   product,
		Title:     prod.Title,
		HoldTTL:   prod.HoldTTL,
		Max:       prod.Max,
		Redeemers: prod.Redeemers,
	}
	if r.Title == "" {
		r.Title = Title(product)
	}
	if r.HoldTTL == 0 {
		r.HoldTTL = DefaultHoldTTL
	}
	if r.Max == 0 {
		r.Max = 1
	}
	for _, g := range p.Exclusive {
		if !slices.Contains(g, product) {
			continue
		}
		for _, other := range g {
			if other != product && !slices.Contains(r.Conflicts, other) {
				r.Conflicts = append(r.Conflicts, other)
			}
		}
	}
	sort.Strings(r.Conflicts)
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
