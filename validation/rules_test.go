package validation_test

import (
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// The rule engine's reference (Rule.Evaluate, Rule.GrantViolations), on
// rules compiled from a policy as the Service compiles them.

var ruleT0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// rulesPolicy has every kind of rule around the card: its max, an
// exclusive group with the loan, a family of unsecured credit (at most 2)
// and a cooling-off period after a loan or a mortgage ended.
func rulesPolicy() *validation.Policy {
	redeemers := []string{"svc"}
	return &validation.Policy{
		Products: map[string]validation.Product{
			"credit_card":   {Redeemers: redeemers, Max: 2, MinRating: 600},
			"store_card":    {Redeemers: redeemers},
			"overdraft":     {Redeemers: redeemers},
			"personal_loan": {Redeemers: redeemers},
			"mortgage":      {Redeemers: redeemers},
			"savings":       {Redeemers: redeemers},
		},
		Exclusive: [][]string{{"credit_card", "personal_loan"}},
		Limits: []validation.FamilyLimit{{Name: "unsecured_credit", Title: "unsecured credit products", Max: 2,
			Products: []string{"credit_card", "store_card", "overdraft"}}},
		CoolingOff: []validation.CoolingOffRule{{Name: "card_after_loan", After: []string{"personal_loan", "mortgage"},
			Products: []string{"credit_card"}, Period: validation.Period(90 * day)}},
		Rating: &validation.RatingConfig{URL: "http://bureau/{customer_id}"},
	}
}

func ruleOf(tb testing.TB, p *validation.Policy, product string) validation.Rule {
	tb.Helper()
	if err := p.Validate(nil); err != nil {
		tb.Fatal(err)
	}
	r, ok := p.Rule(product)
	if !ok {
		tb.Fatalf("no rule for %s", product)
	}
	return r
}

func grantAt(product, id string, at time.Time) validation.Grant {
	return validation.Grant{CustomerID: "C-1", Product: product, CheckID: id, GrantedAt: at}
}

func intp(n int) *int { return &n }

// TestEvaluateOrder: every rule that fails is listed, in the engine's
// order: blocked, case, rating, product limit, exclusive, family,
// cooling-off, hold.
func TestEvaluateOrder(t *testing.T) {
	card := ruleOf(t, rulesPolicy(), "credit_card")
	hold := &validation.Check{ID: "chk_h", Product: "store_card", CreatedAt: ruleT0, ExpiresAt: ruleT0.Add(5 * time.Minute), PlacedBy: "branch-portal"}
	st := validation.Standing{
		Block: &validation.Block{Reason: "fraud", Since: ruleT0.Add(-day), By: "ops"},
		Case:  &validation.Case{Products: []string{"personal_loan"}, OpenedAt: ruleT0.Add(-day), Detail: "double holding"},
		Grants: []validation.Grant{
			grantAt("credit_card", "chk_c2", ruleT0.Add(-2*day)),
			grantAt("personal_loan", "chk_l", ruleT0.Add(-3*day)),
			grantAt("credit_card", "chk_c1", ruleT0.Add(-4*day)),
		},
		Hold:  hold,
		Ended: map[string]time.Time{"mortgage": ruleT0.Add(-10 * day)},
		Score: intp(599),
	}
	vs, rating, need := card.Evaluate(st, ruleT0)
	want := []validation.Reason{validation.ReasonCustomerBlocked, validation.ReasonCaseOpen, validation.ReasonRatingTooLow,
		validation.ReasonAlreadyHoldsProduct, validation.ReasonConflictingProduct, validation.ReasonFamilyLimit,
		validation.ReasonCoolingOff, validation.ReasonHoldExists}
	if got := reasonsOf(vs); !slices.Equal(got, want) || rating != validation.RatingFail || need {
		t.Fatalf("Evaluate = %v, %s, %v; want %v, fail", got, rating, need, want)
	}
	if v := vs[3]; v.CheckID != "chk_c1" || !v.Since.Equal(ruleT0.Add(-4*day)) {
		t.Errorf("already_holds_product = %+v, want the oldest card", v)
	}
	if v := vs[5]; len(v.Held) != 3 || v.Held[0].CheckID != "chk_c1" || v.Held[1].CheckID != "chk_c2" ||
		v.Held[2] != (validation.Holding{Product: "store_card", CheckID: "chk_h", Since: hold.CreatedAt, Until: hold.ExpiresAt}) {
		t.Errorf("family_limit held = %+v, want the cards oldest first, then the live hold with its expiry", v.Held)
	}
	if v := vs[6]; v.Product != "mortgage" || v.Rule != "card_after_loan" || !v.Until.Equal(ruleT0.Add(80*day)) {
		t.Errorf("cooling_off = %+v", v)
	}
}

// TestEvaluate: each rule alone, at its boundaries.
func TestEvaluate(t *testing.T) {
	p := rulesPolicy()
	card, overdraft, savings := ruleOf(t, p, "credit_card"), ruleOf(t, p, "overdraft"), ruleOf(t, p, "savings")
	live := func(product string) *validation.Check {
		return &validation.Check{ID: "chk_h", Product: product, CreatedAt: ruleT0, ExpiresAt: ruleT0.Add(time.Minute)}
	}
	tests := []struct {
		name   string
		rule   validation.Rule
		st     validation.Standing
		want   []validation.Reason
		rating validation.RatingState
		need   bool
	}{
		{name: "free, with a score", rule: card, st: validation.Standing{Score: intp(600)}, rating: validation.RatingPass},
		{name: "free, no score: the bureau decides", rule: card, need: true},
		{name: "no score and another rule fails: not asked", rule: card, st: validation.Standing{Hold: live("savings")},
			want: []validation.Reason{validation.ReasonHoldExists}, rating: validation.RatingUnknown},
		{name: "bureau skipped", rule: card, st: validation.Standing{SkipRating: true}, rating: validation.RatingSkipped},
		{name: "no rating rule", rule: savings, rating: validation.RatingNone},
		{name: "a block that lapsed", rule: savings, rating: validation.RatingNone,
			st: validation.Standing{Block: &validation.Block{Reason: "r", Until: ruleT0}}},
		{name: "a block until later", rule: savings, rating: validation.RatingNone,
			st:   validation.Standing{Block: &validation.Block{Reason: "r", Until: ruleT0.Add(time.Millisecond)}},
			want: []validation.Reason{validation.ReasonCustomerBlocked}},
		{name: "a case about a product of the family", rule: overdraft, rating: validation.RatingNone,
			st:   validation.Standing{Case: &validation.Case{Products: []string{"credit_card"}}},
			want: []validation.Reason{validation.ReasonCaseOpen}},
		{name: "a case about another product", rule: overdraft, rating: validation.RatingNone,
			st: validation.Standing{Case: &validation.Case{Products: []string{"mortgage"}}}},
		{name: "one card of max 2", rule: card, rating: validation.RatingPass,
			st: validation.Standing{Score: intp(700), Grants: []validation.Grant{grantAt("credit_card", "a", ruleT0)}}},
		{name: "one of the family and a live hold of another: 2 of 2", rule: overdraft, rating: validation.RatingNone,
			st:   validation.Standing{Grants: []validation.Grant{grantAt("credit_card", "a", ruleT0)}, Hold: live("store_card")},
			want: []validation.Reason{validation.ReasonFamilyLimit, validation.ReasonHoldExists}},
		{name: "one of the family and a live hold outside it", rule: overdraft, rating: validation.RatingNone,
			st:   validation.Standing{Grants: []validation.Grant{grantAt("credit_card", "a", ruleT0)}, Hold: live("savings")},
			want: []validation.Reason{validation.ReasonHoldExists}},
		{name: "a loan ended 90 days ago to the instant", rule: card, rating: validation.RatingPass,
			st: validation.Standing{Score: intp(700), Ended: map[string]time.Time{"personal_loan": ruleT0.Add(-90 * day)}}},
		{name: "a loan ended a millisecond less than 90 days ago", rule: card, rating: validation.RatingPass,
			st:   validation.Standing{Score: intp(700), Ended: map[string]time.Time{"personal_loan": ruleT0.Add(-90*day + time.Millisecond)}},
			want: []validation.Reason{validation.ReasonCoolingOff}},
		{name: "a product outside the rule ended", rule: card, rating: validation.RatingPass,
			st: validation.Standing{Score: intp(700), Ended: map[string]time.Time{"store_card": ruleT0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, rating, need := tt.rule.Evaluate(tt.st, ruleT0)
			if got := reasonsOf(vs); !slices.Equal(got, tt.want) || rating != tt.rating || need != tt.need {
				t.Fatalf("Evaluate = %v, %q, need %v; want %v, %q, need %v", got, rating, need, tt.want, tt.rating, tt.need)
			}
		})
	}
}

// TestCoolingOffNamesTheLatestEnd: of the products whose end starts the
// period, the violation names the one that ended last, and its period.
func TestCoolingOffNamesTheLatestEnd(t *testing.T) {
	card := ruleOf(t, rulesPolicy(), "credit_card")
	loan, mortgage := ruleT0.Add(-20*day), ruleT0.Add(-10*day)
	vs := card.GrantViolations(nil, validation.Standing{Ended: map[string]time.Time{"personal_loan": loan, "mortgage": mortgage}}, ruleT0)
	want := validation.Violation{Reason: validation.ReasonCoolingOff, Rule: "card_after_loan", Product: "mortgage", Since: mortgage, Until: mortgage.Add(90 * day)}
	if len(vs) != 1 || vs[0].Reason != want.Reason || vs[0].Rule != want.Rule || vs[0].Product != want.Product ||
		!vs[0].Since.Equal(want.Since) || !vs[0].Until.Equal(want.Until) {
		t.Fatalf("GrantViolations = %+v, want [%+v]", vs, want)
	}
}

// TestGrantViolations: what a redemption applies again is the limits and
// the cooling-off, never the block, the rating or the live hold; a family
// counts the live hold only when one is given (an import), not at a
// redemption (whose hold is the product asked for).
func TestGrantViolations(t *testing.T) {
	overdraft := ruleOf(t, rulesPolicy(), "overdraft")
	st := validation.Standing{
		Block:  &validation.Block{Reason: "r"},
		Grants: []validation.Grant{grantAt("credit_card", "a", ruleT0)},
		Hold:   &validation.Check{ID: "h", Product: "store_card", CreatedAt: ruleT0, ExpiresAt: ruleT0.Add(time.Minute)},
	}
	if vs := overdraft.GrantViolations(nil, st, ruleT0); !slices.Equal(reasonsOf(vs), []validation.Reason{validation.ReasonFamilyLimit}) {
		t.Fatalf("with the live hold counted = %v, want family_limit only", reasonsOf(vs))
	}
	st.Hold = nil
	if vs := overdraft.GrantViolations(nil, st, ruleT0); len(vs) != 0 {
		t.Fatalf("without a live hold = %v, want none", reasonsOf(vs))
	}
}

func reasonsOf(vs []validation.Violation) []validation.Reason {
	var out []validation.Reason
	for _, v := range vs {
		out = append(out, v.Reason)
	}
	return out
}
