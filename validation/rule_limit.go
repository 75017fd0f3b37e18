package validation

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The limit rules: how many products of a set a customer may hold. Three
// are written in a policy, and all three compile to a Limit, which one
// evaluator applies (evalLimit here, rule_limit in the Lua engine):
//
//   - a product's max: at most Max grants of the product
//     (already_holds_product);
//   - an exclusive group: never two different products of the group
//     (conflicting_product, one per grant in the way);
//   - a family limit: at most Max products of a named family, counting
//     the grants and the live hold (family_limit).

// FamilyLimit is a family limit as the policy file writes it, under
// limits:.
type FamilyLimit struct {
	Name     string   `yaml:"name"`     // the rule's name, recorded on its refusals: lowercase letters, digits and _
	Title    string   `yaml:"title"`    // the family in words ("unsecured credit products"); default "products of <name>"
	Max      int      `yaml:"max"`      // at least 1
	Products []string `yaml:"products"` // the family
}

// LimitKind says which of the three limits a Limit is.
type LimitKind string

// The kinds of Limit.
const (
	LimitProduct   LimitKind = "product"   // the product's own max
	LimitExclusive LimitKind = "exclusive" // its exclusive groups: Products are the products that exclude it
	LimitFamily    LimitKind = "family"    // a family limit: Products are the family
)

// Limit is a compiled limit rule of one product.
type Limit struct {
	Kind     LimitKind
	Name     string   // family: the rule's name
	Title    string   // family: the family in words
	Max      int      // product, family: how many may be held
	Products []string // sorted: exclusive: the products in conflict; family: the family; product: the product
}

var ruleName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

func (l FamilyLimit) validate(p *Policy, names map[string]bool, line int) error {
	switch {
	case !ruleName.MatchString(l.Name):
		return fmt.Errorf("line %d: limit %q: names are lowercase letters, digits and _", line, l.Name)
	case names[l.Name]:
		return fmt.Errorf("line %d: limit %q: another rule has this name", line, l.Name)
	case l.Max < 1:
		return fmt.Errorf("line %d: limit %q: max %d must be at least 1", line, l.Name, l.Max)
	case len(l.Products) == 0:
		return fmt.Errorf("line %d: limit %q: products is empty", line, l.Name)
	}
	for _, name := range l.Products {
		if _, ok := p.Products[name]; !ok {
			return fmt.Errorf("line %d: limit %q names unknown product %q", line, l.Name, name)
		}
	}
	names[l.Name] = true
	return nil
}

// limitsOf compiles the limits of a product: its max, its exclusive groups
// (merged: the products that exclude it), then the families it is in, in
// the order the file lists them.
func (p *Policy) limitsOf(product string) []Limit {
	out := []Limit{{Kind: LimitProduct, Max: max(p.Products[product].Max, 1), Products: []string{product}}}
	var conflicts []string
	for _, g := range p.Exclusive {
		if !slices.Contains(g, product) {
			continue
		}
		for _, other := range g {
			if other != product && !slices.Contains(conflicts, other) {
				conflicts = append(conflicts, other)
			}
		}
	}
	if len(conflicts) > 0 {
		slices.Sort(conflicts)
		out = append(out, Limit{Kind: LimitExclusive, Products: conflicts})
	}
	for _, f := range p.Limits {
		if !slices.Contains(f.Products, product) {
			continue
		}
		fam := slices.Clone(f.Products)
		slices.Sort(fam)
		out = append(out, Limit{Kind: LimitFamily, Name: f.Name, Title: cmp.Or(f.Title, "products of "+f.Name), Max: f.Max, Products: slices.Compact(fam)})
	}
	return out
}

// Conflicts returns the products that exclude the rule's product (its
// exclusive groups), sorted.
func (r Rule) Conflicts() []string {
	for _, l := range r.Limits {
		if l.Kind == LimitExclusive {
			return l.Products
		}
	}
	return nil
}

// Related returns the product and every product that shares a limit with
// it, sorted: an open case about any of them holds the product's line.
func (r Rule) Related() []string {
	out := []string{r.Product}
	for _, l := range r.Limits {
		out = append(out, l.Products...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// byGranted orders grants oldest first (then by check id), as every
// violation lists them.
func byGranted(a, b Grant) int {
	return cmp.Or(a.GrantedAt.Compare(b.GrantedAt), cmp.Compare(a.CheckID, b.CheckID))
}

// evalLimit appends the violations of one limit of a check (or a
// redemption) of product, given the customer's grants and live hold (nil
// for none, and at a redemption, whose hold is the product asked for).
func evalLimit(vs []Violation, l Limit, product string, grants []Grant, hold *Check) []Violation {
	var in []Grant
	for _, g := range grants {
		if slices.Contains(l.Products, g.Product) {
			in = append(in, g)
		}
	}
	slices.SortFunc(in, byGranted)
	switch l.Kind {
	case LimitProduct:
		if len(in) > 0 && len(in)+1 > l.Max {
			vs = append(vs, Violation{Reason: ReasonAlreadyHoldsProduct, Product: product, CheckID: in[0].CheckID, Since: in[0].GrantedAt})
		}
	case LimitExclusive:
		for _, g := range in {
			vs = append(vs, Violation{Reason: ReasonConflictingProduct, Product: g.Product, CheckID: g.CheckID, Since: g.GrantedAt})
		}
	case LimitFamily:
		held := make([]Holding, 0, len(in)+1)
		for _, g := range in {
			held = append(held, Holding{Product: g.Product, CheckID: g.CheckID, Since: g.GrantedAt})
		}
		if hold != nil && slices.Contains(l.Products, hold.Product) {
			held = append(held, Holding{Product: hold.Product, CheckID: hold.ID, Since: hold.CreatedAt, Until: hold.ExpiresAt})
		}
		if len(held)+1 > l.Max {
			vs = append(vs, Violation{Reason: ReasonFamilyLimit, Rule: l.Name, Note: l.Title, Limit: l.Max, Held: held})
		}
	}
	return vs
}

// familySentence words a family_limit violation: "Customer holds 2 of 2
// unsecured credit products: Credit card since 3 Mar 2024 and Store card
// since 5 Jun 2024 (rule unsecured_credit)."
func familySentence(v Violation, title func(string) string) string {
	parts := make([]string, len(v.Held))
	for i, h := range v.Held {
		if h.Until.IsZero() {
			parts[i] = fmt.Sprintf("%s since %s", title(h.Product), h.Since.UTC().Format(DateLayout))
		} else {
			parts[i] = fmt.Sprintf("%s (a check in progress until %s)", title(h.Product), h.Until.UTC().Format(TimeLayout))
		}
	}
	return fmt.Sprintf("Customer holds %d of %d %s: %s (rule %s).", len(v.Held), v.Limit, v.Note, joinAnd(parts), v.Rule)
}

// joinAnd joins words as a sentence lists them: "a, b and c".
func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
