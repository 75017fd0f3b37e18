package validation

import (
	"slices"
	"time"
)

// The rule engine. A policy version compiles (Policy.Rule) into the rules
// of each product; one evaluator applies them, in this order: the
// blocklist, an open case, the minimum rating, the limits (the product's
// max, its exclusive groups, its families), the cooling-off periods, and
// the live hold. The Redis store runs it in Lua, in the check's and the
// redemption's one script (redisstore/lua/rules.lua); Evaluate is its
// reference in Go, which the in-memory store runs and which the
// differential test holds the Lua engine to, and which the policy impact
// report applies to candidate policies.
//
// A new kind of rule is one Go file here (its policy-file type, its
// validation, its compiled form on Rule, its evaluator and its sentence;
// rule_limit.go and rule_cooling.go are the models) and one Lua section
// in rules.lua; docs/architecture.md lists the steps.

// Standing is what the rules read of one customer at a decision.
type Standing struct {
	Block  *Block               // nil: not blocked (or the block has lapsed)
	Case   *Case                // the open reconciliation case, nil for none
	Grants []Grant              // the ledger
	Hold   *Check               // the live hold, nil for none
	Ended  map[string]time.Time // when each product's last grant ended (released)
	Score  *int                 // the bureau score to apply (fresh, or cached); nil: unknown
	// SkipRating: the bureau is unavailable and the policy allows, so the
	// rating rule passes unevaluated.
	SkipRating bool
}

// Evaluate applies every rule of a check of r.Product to the customer at
// now, returning the failed rules in order (none: the check may place its
// hold) and what became of the rating rule. needRating is true, with no
// violations, when only the bureau's answer can decide: every other rule
// passes and no score is known.
func (r Rule) Evaluate(st Standing, now time.Time) (vs []Violation, rating RatingState, needRating bool) {
	if b := st.Block; b != nil && (b.Until.IsZero() || b.Until.After(now)) {
		vs = append(vs, Violation{Reason: ReasonCustomerBlocked, Note: b.Reason, Until: b.Until, By: b.By, Since: b.Since})
	}
	if v := r.caseViolation(st.Case); v != nil {
		vs = append(vs, *v)
	}
	ratingAt := len(vs)
	vs = r.GrantViolations(vs, st, now)
	if h := st.Hold; h != nil {
		vs = append(vs, Violation{Reason: ReasonHoldExists, Product: h.Product, CheckID: h.ID, Until: h.ExpiresAt, By: h.PlacedBy})
	}
	switch {
	case r.MinRating == 0:
		return vs, RatingNone, false
	case st.SkipRating:
		return vs, RatingSkipped, false
	case st.Score == nil && len(vs) == 0:
		return nil, "", true
	case st.Score == nil:
		return vs, RatingUnknown, false
	case *st.Score < r.MinRating:
		v := Violation{Reason: ReasonRatingTooLow, Product: r.Product, RequiredRating: ptr(r.MinRating), Rating: ptr(*st.Score)}
		return slices.Insert(vs, ratingAt, v), RatingFail, false
	}
	return vs, RatingPass, false
}

// GrantViolations appends the violations of the rules a redemption and an
// import apply again to the ledger: the limits and the cooling-off
// periods. st.Hold is counted by family limits (nil at a redemption, whose
// hold is the product asked for).
func (r Rule) GrantViolations(vs []Violation, st Standing, now time.Time) []Violation {
	for _, l := range r.Limits {
		vs = evalLimit(vs, l, r.Product, st.Grants, st.Hold)
	}
	for _, c := range r.CoolingOff {
		vs = evalCoolingOff(vs, c, st.Ended, now)
	}
	return vs
}

// caseViolation is the case_open violation of the rule's product while the
// open case concerns it or a product sharing a limit with it; nil
// otherwise.
func (r Rule) caseViolation(c *Case) *Violation {
	if c == nil {
		return nil
	}
	related := r.Related()
	for _, p := range c.Products {
		if slices.Contains(related, p) {
			return &Violation{Reason: ReasonCaseOpen, Products: slices.Clone(c.Products), Since: c.OpenedAt, Note: c.Detail}
		}
	}
	return nil
}

func ptr(n int) *int { return &n }
