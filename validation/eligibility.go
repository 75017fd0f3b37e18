package validation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RatingSource answers a customer's credit score, 0 to 1000. Any error
// means the bureau is unavailable for this call (timeout, failure, open
// circuit breaker, malformed answer).
type RatingSource interface {
	Rating(ctx context.Context, customerID string) (int, error)
}

// RatingState says what became of a rating rule in an evaluation.
type RatingState string

// The rating states a Store reports.
const (
	RatingNone    RatingState = "none" // the product has no min_rating
	RatingPass    RatingState = "pass"
	RatingFail    RatingState = "fail"
	RatingSkipped RatingState = "skip"    // bureau unavailable, policy allows
	RatingUnknown RatingState = "unknown" // cold cache, not asked because other rules fail
)

// EligibilityResult is what Store.Eligibility found.
type EligibilityResult struct {
	Violations []Violation
	Rating     RatingState
}

// Rule names of an eligibility verdict, in evaluation order.
const (
	RuleBlocklist    = "blocklist"
	RuleCase         = "case" // an open reconciliation case of the product's group
	RuleRating       = "rating"
	RuleProductLimit = "product_limit"
	RuleExclusivity  = "exclusivity"
	RuleFamilyLimit  = "family_limit"
	RuleCoolingOff   = "cooling_off"
	RuleHold         = "hold"
)

// Verdicts of one rule.
const (
	VerdictPass          = "pass"
	VerdictFail          = "fail"
	VerdictNotApplicable = "not_applicable" // the product has no such rule
	VerdictNotEvaluated  = "not_evaluated"  // rating: bureau unavailable and allowed, or not asked because other rules fail
)

// RuleVerdict is the outcome of one rule of a check.
type RuleVerdict struct {
	Rule       string
	Verdict    string
	Violations []Violation
}

// Eligibility is the dry run of a check: the decision a check would make
// now and every rule's verdict.
type Eligibility struct {
	CustomerID    string
	Product       string
	PolicyVersion string // the version in force, whose rules were evaluated
	Allowed       bool
	Rules         []RuleVerdict
	Violations    []Violation // every failed rule, in order, worded
}

// ruleOf maps a violation to the rule that produced it.
var ruleOf = map[Reason]string{
	ReasonCustomerBlocked:     RuleBlocklist,
	ReasonCaseOpen:            RuleCase,
	ReasonRatingTooLow:        RuleRating,
	ReasonAlreadyHoldsProduct: RuleProductLimit,
	ReasonConflictingProduct:  RuleExclusivity,
	ReasonFamilyLimit:         RuleFamilyLimit,
	ReasonCoolingOff:          RuleCoolingOff,
	ReasonHoldExists:          RuleHold,
}

// Eligibility evaluates, without placing a hold, exactly the rules a check
// of the product would evaluate now, with the same store function, so a
// check placed right after decides the same (unless something changed in
// between).
func (s *Service) Eligibility(ctx context.Context, customerID, product string) (Eligibility, error) {
	now := s.now()
	rule, err := s.rule(product, now)
	if err != nil {
		return Eligibility{}, err
	}
	customerID, err = ParseCustomerID(customerID)
	if err != nil {
		return Eligibility{}, err
	}
	req := EligibilityRequest{Rule: rule, CustomerID: customerID, Now: now, Rating: s.ratingInput()}
	res, err := s.Store.Eligibility(ctx, req)
	if errors.Is(err, ErrRatingNeeded) {
		if req.Rating, err = s.fetchRating(ctx, customerID); err != nil {
			return Eligibility{}, err
		}
		res, err = s.Store.Eligibility(ctx, req)
	}
	if err != nil {
		return Eligibility{}, err
	}
	e := Eligibility{CustomerID: customerID, Product: product, PolicyVersion: rule.Version, Allowed: len(res.Violations) == 0, Violations: res.Violations}
	s.word(e.Violations)
	for _, name := range []string{RuleBlocklist, RuleCase, RuleRating, RuleProductLimit, RuleExclusivity, RuleFamilyLimit, RuleCoolingOff, RuleHold} {
		v := RuleVerdict{Rule: name, Verdict: VerdictPass}
		for _, viol := range e.Violations {
			if ruleOf[viol.Reason] == name {
				v.Verdict = VerdictFail
				v.Violations = append(v.Violations, viol)
			}
		}
		if name == RuleRating {
			switch res.Rating {
			case RatingNone:
				v.Verdict = VerdictNotApplicable
			case RatingSkipped, RatingUnknown:
				v.Verdict = VerdictNotEvaluated
			}
		}
		e.Rules = append(e.Rules, v)
	}
	return e, nil
}

// Block puts the customer on the blocklist (admins only); a live hold is
// cancelled and returned.
func (s *Service) Block(ctx context.Context, actor Actor, customerID, reason string, until time.Time) (*Check, error) {
	if !actor.Has(RoleAdmin) {
		return nil, Errorf(ReasonForbidden, "only admins block customers")
	}
	customerID, err := ParseCustomerID(customerID)
	if err != nil {
		return nil, err
	}
	switch {
	case reason == "" || len(reason) > 500 || !PlainText(reason):
		return nil, Errorf(ReasonInvalidRequest, "reason is required, at most 500 characters of text without control or format characters")
	case !until.IsZero() && !until.After(s.now()):
		return nil, Errorf(ReasonInvalidRequest, "until %s is not in the future", until.Format(time.RFC3339))
	}
	return s.Store.Block(ctx, BlockRequest{CustomerID: customerID, Reason: reason, Until: until, Actor: actor.ID, Now: s.now()})
}

// Unblock lifts a customer's block (admins only): ErrNotFound when none.
func (s *Service) Unblock(ctx context.Context, actor Actor, customerID string) error {
	if !actor.Has(RoleAdmin) {
		return Errorf(ReasonForbidden, "only admins unblock customers")
	}
	customerID, err := ParseCustomerID(customerID)
	if err != nil {
		return err
	}
	return s.Store.Unblock(ctx, customerID, actor.ID, s.now())
}

// ratingInput is the rating part of a request before any bureau call.
func (s *Service) ratingInput() RatingInput {
	if s.Policy.Rating == nil {
		return RatingInput{}
	}
	return RatingInput{CacheTTL: s.Policy.Rating.WithDefaults().CacheTTL}
}

// fetchRating asks the bureau. When it is unavailable the policy decides:
// refuse (ErrRatingUnavailable, 503) or allow (the rule is skipped).
func (s *Service) fetchRating(ctx context.Context, customerID string) (RatingInput, error) {
	in := s.ratingInput()
	if s.Ratings == nil {
		return in, fmt.Errorf("rating needed for %s but no rating source is configured", customerID)
	}
	score, err := s.Ratings.Rating(ctx, customerID)
	if err == nil {
		in.Score = &score
		return in, nil
	}
	if s.Policy.Rating.WithDefaults().OnUnavailable == "allow" {
		in.Skip = true
		return in, nil
	}
	return in, &Error{Reason: ReasonRatingUnavailable, Detail: "the credit rating bureau is unavailable; retry later", Err: err}
}
