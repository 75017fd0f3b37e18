package validation

import (
	"context"
	"slices"
	"strings"
	"time"
)

// The impact of a candidate policy: before a policy is switched on, an
// admin asks what it would do to the ledger as it stands. Two numbers, from
// one scan of every customer in bounded batches (the store's
// StandingScanner, as reconciliation scans grants), so memory stays that of
// a batch and a page of examples whatever the ledger's size:
//
//   - the customers the candidate would put in violation: those whose
//     grants already break one of its limits. Each grant is evaluated, with
//     the candidate's rule of its product, against the customer's grants
//     that came before it (Rule.GrantViolations): a pair that breaks a
//     limit is found once, at its later grant, worded as the refusal of
//     that grant would be; the customer counts once however many it has.
//     Cooling-off periods refuse new products, not holdings: they count
//     in the second number only.
//   - the share of the recent checks (the audit's checked events since a
//     time) it would have refused: each check's product under the
//     candidate, against the ledger as the store still knows it at the
//     check's time (the grants granted before it but its own, the ends
//     before it). The rules that do not depend on the policy's text (a
//     block, an open case, a live hold) and the rating (the bureau's score
//     at the time is not kept) are not evaluated again.

// The bounds of an impact report.
const (
	DefaultImpactExamples = 20
	MaxImpactExamples     = 100
	DefaultImpactWindow   = 30 * 24 * time.Hour // the recent checks: those of the last 30 days
)

// StandingScanner visits every customer of a store: a Store that
// implements it can report the impact of a candidate policy
// (Service.Impact). ScanStandings calls fn with one bounded batch of
// customers at a time (never concurrently; a customer is in one batch,
// unless a SCAN over a live keyspace returns its key twice), and
// stops at fn's first error, returning it. It reads only: it settles no
// expiry and writes nothing.
type StandingScanner interface {
	ScanStandings(ctx context.Context, req ScanRequest, fn func([]CustomerStanding) error) error
}

// ScanRequest is the input of StandingScanner.ScanStandings.
type ScanRequest struct {
	Since time.Time // the checked events wanted: those at or after Since
	Now   time.Time
}

// CustomerStanding is what a candidate policy's rules read of one
// customer: in Standing, the grants (oldest first) and when each product
// last ended (Block, Case, Hold and the rating are left unset); in
// Checked, the customer's checked events since the scan's Since, the live
// hold's included, newest first.
type CustomerStanding struct {
	CustomerID string
	Standing   Standing
	Checked    []Event
}

// ImpactOptions are the input of Service.Impact; the zero value of each
// field means its default.
type ImpactOptions struct {
	At       time.Time // which version of the candidate applies (Policy.At); default now
	Since    time.Time // the recent checks are those since; default DefaultImpactWindow before now
	Examples int       // customers in violation to show; default DefaultImpactExamples, at most MaxImpactExamples
}

// Impact is what a candidate policy would do to the ledger.
type Impact struct {
	PolicyVersion        string    // the candidate's version that was applied
	At                   time.Time // the time that chose it
	CustomersScanned     int
	CustomersInViolation int
	// Examples are customers in violation, those of the smallest ids, in
	// order, so that the same ledger gives the same page.
	Examples     []ImpactExample
	RecentChecks RecentChecks
}

// ImpactExample is one customer the candidate would put in violation.
type ImpactExample struct {
	CustomerID string
	Violations []GrantViolation
}

// GrantViolation is a limit of the candidate that a customer's grant
// breaks, worded as the candidate would word its refusal: Violation's
// "this product" is Grant's.
type GrantViolation struct {
	Grant Grant
	Violation
}

// RecentChecks is what the candidate would have decided of the recent
// checks.
type RecentChecks struct {
	Since       time.Time
	Total       int
	WouldRefuse int
	Share       float64 // WouldRefuse / Total; 0 when Total is 0
	// ByReason counts the refused checks by each rule they fail (a check
	// refused by two rules counts under both); invalid_request: a product
	// the candidate does not know.
	ByReason map[Reason]int
}

// Impact reports what the candidate policy would do to the ledger
// (admins only: ErrForbidden): the customers it would put in violation and
// the share of the recent checks it would have refused. The candidate must
// be validated (Policy.Validate). Errors: ErrInvalidRequest for options
// out of range, ErrNotFound when the store cannot scan its customers, and
// the store's errors.
func (s *Service) Impact(ctx context.Context, actor Actor, candidate *Policy, opts ImpactOptions) (Impact, error) {
	if !actor.Has(RoleAdmin) {
		return Impact{}, Errorf(ReasonForbidden, "only admins try candidate policies")
	}
	now := s.now()
	opts, err := opts.withDefaults(now)
	if err != nil {
		return Impact{}, err
	}
	if candidate == nil {
		return Impact{}, Errorf(ReasonInvalidRequest, "no candidate policy")
	}
	scanner, ok := s.Store.(StandingScanner)
	if !ok {
		return Impact{}, Errorf(ReasonNotFound, "this store cannot scan its customers")
	}
	// One report at a time per instance: each scans the whole ledger.
	if !s.impactRunning.CompareAndSwap(false, true) {
		return Impact{}, Errorf(ReasonUnavailable, "another policy impact report is running on this instance; retry when it is done")
	}
	defer s.impactRunning.Store(false)
	v := candidate.At(opts.At)
	r := impactRun{version: v, words: &Service{Policy: candidate}, examples: opts.Examples,
		out: Impact{PolicyVersion: v.Version, At: opts.At, RecentChecks: RecentChecks{Since: opts.Since, ByReason: map[Reason]int{}}}}
	err = scanner.ScanStandings(ctx, ScanRequest{Since: opts.Since, Now: now}, func(batch []CustomerStanding) error {
		for _, c := range batch {
			r.customer(c, now)
		}
		return ctx.Err()
	})
	if err != nil {
		return Impact{}, err
	}
	if rc := &r.out.RecentChecks; rc.Total > 0 {
		rc.Share = float64(rc.WouldRefuse) / float64(rc.Total)
	}
	if r.out.Examples == nil {
		r.out.Examples = []ImpactExample{}
	}
	return r.out, nil
}

func (o ImpactOptions) withDefaults(now time.Time) (ImpactOptions, error) {
	if o.At.IsZero() {
		o.At = now
	}
	if o.Since.IsZero() {
		o.Since = now.Add(-DefaultImpactWindow)
	}
	switch {
	case o.Examples == 0:
		o.Examples = DefaultImpactExamples
	case o.Examples < 0 || o.Examples > MaxImpactExamples:
		return o, Errorf(ReasonInvalidRequest, "examples %d is outside 1..%d", o.Examples, MaxImpactExamples)
	}
	if o.Since.After(now) {
		return o, Errorf(ReasonInvalidRequest, "since %s is in the future", o.Since.UTC().Format(time.RFC3339))
	}
	return o, nil
}

// impactRun is one report being made: its counts and its page of
// examples, and nothing else of the customers it has seen.
type impactRun struct {
	version  *Policy  // the candidate's version that applies
	words    *Service // words violations with the candidate's titles
	examples int
	out      Impact
}

func (r *impactRun) customer(c CustomerStanding, now time.Time) {
	r.out.CustomersScanned++
	if vs := r.limitViolations(c.Standing.Grants); len(vs) > 0 {
		r.out.CustomersInViolation++
		r.example(ImpactExample{CustomerID: c.CustomerID, Violations: vs})
	}
	for _, e := range c.Checked {
		if e.Type != EventChecked || e.At.Before(r.out.RecentChecks.Since) || e.At.After(now) {
			continue
		}
		r.recheck(e, c.Standing)
	}
}

// limitViolations evaluates each grant against those granted before it.
func (r *impactRun) limitViolations(grants []Grant) []GrantViolation {
	sorted := slices.SortedFunc(slices.Values(grants), byGranted)
	var out []GrantViolation
	for i, g := range sorted {
		rule, ok := r.version.Rule(g.Product)
		if !ok {
			continue // a product the candidate retires: it refuses new ones only
		}
		vs := rule.GrantViolations(nil, Standing{Grants: sorted[:i]}, g.GrantedAt)
		r.words.word(vs)
		for _, v := range vs {
			out = append(out, GrantViolation{Grant: g, Violation: v})
		}
	}
	return out
}

// example keeps the customer if its id is among the smallest seen.
func (r *impactRun) example(x ImpactExample) {
	xs := r.out.Examples
	i, found := slices.BinarySearchFunc(xs, x.CustomerID, func(e ImpactExample, id string) int { return strings.Compare(e.CustomerID, id) })
	if found || i >= r.examples {
		return // found: SCAN returned the customer's key twice
	}
	xs = slices.Insert(xs, i, x)
	r.out.Examples = xs[:min(len(xs), r.examples)]
}

// recheck decides a recent check again under the candidate.
func (r *impactRun) recheck(e Event, st Standing) {
	rc := &r.out.RecentChecks
	rc.Total++
	rule, ok := r.version.Rule(e.Product)
	if !ok {
		rc.WouldRefuse++
		rc.ByReason[ReasonInvalidRequest]++
		return
	}
	var before Standing
	for _, g := range st.Grants {
		if g.CheckID != e.CheckID && !g.GrantedAt.After(e.At) {
			before.Grants = append(before.Grants, g)
		}
	}
	for p, at := range st.Ended {
		if !at.After(e.At) {
			if before.Ended == nil {
				before.Ended = map[string]time.Time{}
			}
			before.Ended[p] = at
		}
	}
	vs := rule.GrantViolations(nil, before, e.At)
	if len(vs) == 0 {
		return
	}
	rc.WouldRefuse++
	seen := map[Reason]bool{}
	for _, v := range vs {
		if !seen[v.Reason] {
			seen[v.Reason] = true
			rc.ByReason[v.Reason]++
		}
	}
}
