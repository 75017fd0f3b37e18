package redisstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// TestRuleEngineDifferential holds the Lua rule engine (lua/rules.lua) to
// its reference in Go (validation.Rule.Evaluate): random policies (product
// maxes, exclusive groups, family limits, cooling-off periods, minimum
// ratings) × random histories of one customer (grants imported, under no
// rules or under the policy, and released, holds placed, redeemed and
// cancelled, blocks, cases, time moving by up to days, and new policy
// versions between a check and its redemption), on every backend. After each step the test asks
// the store, through its API, a dry run of a random product (Eligibility),
// a check (Hold), an import or a redemption of the live hold under the
// random policy,
// and compares every violation, in order, field by field, with what the
// reference evaluator answers for the history the test applied. Seeded and
// reproducible: CI runs a fixed seed, ARBITER_DIFF_SEED=random draws one
// (logged) and ARBITER_DIFF_SEED=<n> replays it; ARBITER_DIFF_HISTORIES
// sets how many histories each backend runs (default 60).
func TestRuleEngineDifferential(t *testing.T) {
	seed := uint64(20261206) // CI runs the same histories every time
	switch s := os.Getenv("ARBITER_DIFF_SEED"); s {
	case "":
	case "random":
		seed = uint64(time.Now().UnixNano())
	default:
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("ARBITER_DIFF_SEED: %v", err)
		}
	}
	histories := 60
	if s := os.Getenv("ARBITER_DIFF_HISTORIES"); s != "" {
		histories, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (ARBITER_DIFF_SEED=%d replays it), %d histories per backend", seed, seed, histories)
	forEachBackend(t, func(t *testing.T, b backend) {
		var decisions int
		seen := map[validation.Reason]int{}
		for h := range histories {
			d := &differ{t: t, s: b.store, rnd: mrand.New(mrand.NewPCG(seed, uint64(h))), customer: fmt.Sprintf("D-%d", h), seen: seen}
			d.run(80)
			decisions += d.decisions
		}
		t.Logf("%d decisions compared; violations by reason: %v", decisions, seen)
		// Every kind of rule was exercised, or the run proves little.
		for _, r := range []validation.Reason{validation.ReasonCustomerBlocked, validation.ReasonCaseOpen, validation.ReasonRatingTooLow,
			validation.ReasonAlreadyHoldsProduct, validation.ReasonConflictingProduct, validation.ReasonFamilyLimit,
			validation.ReasonCoolingOff, validation.ReasonHoldExists} {
			if seen[r] == 0 && histories >= 20 {
				t.Errorf("no history met a %s violation: the random policies or histories miss a rule", r)
			}
		}
	})
}

// engineProducts are the products of the random policies.
var engineProducts = []string{"card", "store_card", "overdraft", "loan", "mortgage"}

// randomPolicy writes a random policy: each product's max, up to two
// exclusive groups, up to two families, up to two cooling-off rules, and
// minimum ratings.
func randomPolicy(rnd *mrand.Rand) *validation.Policy {
	subset := func(min int) []string {
		var out []string
		for _, p := range engineProducts {
			if rnd.IntN(2) == 0 {
				out = append(out, p)
			}
		}
		for len(out) < min {
			p := engineProducts[rnd.IntN(len(engineProducts))]
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out
	}
	p := &validation.Policy{Products: map[string]validation.Product{}, Rating: &validation.RatingConfig{URL: "http://bureau/{customer_id}"}}
	for _, name := range engineProducts {
		prod := validation.Product{Redeemers: []string{"svc"}, Max: rnd.IntN(3)}
		if rnd.IntN(4) == 0 {
			prod.MinRating = 1 + rnd.IntN(999)
		}
		p.Products[name] = prod
	}
	for range rnd.IntN(3) {
		p.Exclusive = append(p.Exclusive, subset(2))
	}
	for i := range rnd.IntN(3) {
		p.Limits = append(p.Limits, validation.FamilyLimit{Name: fmt.Sprintf("family_%d", i), Max: 1 + rnd.IntN(3), Products: subset(1)})
	}
	for i := range rnd.IntN(3) {
		p.CoolingOff = append(p.CoolingOff, validation.CoolingOffRule{Name: fmt.Sprintf("cool_%d", i), After: subset(1), Products: subset(1),
			Period: validation.Period(time.Duration(1+rnd.IntN(20)) * 24 * time.Hour)})
	}
	if err := p.Validate(nil); err != nil {
		panic(err)
	}
	return p
}

// differ runs one random history against a store and the reference.
type differ struct {
	t         *testing.T
	s         *redisstore.Store
	rnd       *mrand.Rand
	customer  string
	policy    *validation.Policy
	now       time.Time
	decisions int
	seen      map[validation.Reason]int // violations the reference gave, by reason

	// The history as the test applied it: what the reference reads.
	grants []validation.Grant
	ended  map[string]time.Time
	hold   *validation.Check
	token  string // the live hold's token digest
	block  *validation.Block
	kase   *validation.Case
	score  *int // the score the store caches (rating_ttl outlives the test)
}

func (d *differ) run(steps int) {
	d.policy = randomPolicy(d.rnd)
	// From the real clock on: a block expires at its until by Redis's own.
	d.now = time.UnixMilli(time.Now().UnixMilli() + d.rnd.Int64N(1e9)).UTC()
	d.ended = map[string]time.Time{}
	for range steps {
		// Time moves by up to three days, to the millisecond.
		d.now = d.now.Add(time.Duration(d.rnd.Int64N(3*24*3600*1000)) * time.Millisecond)
		switch n := d.rnd.IntN(22); {
		case n < 4:
			d.importGrant()
		case n < 5:
			d.importUnderRules()
		case n < 8:
			d.release()
		case n < 10:
			d.placeFree()
		case n < 11:
			d.cancel()
		case n < 12:
			d.toggleBlock()
		case n < 13:
			d.toggleCase()
		case n < 15:
			d.redeem()
		case n < 17:
			d.check()
		case n < 21:
			d.eligibility()
		default:
			// A new policy version: holds placed under the last one are
			// redeemed under this one.
			d.policy = randomPolicy(d.rnd)
		}
	}
}

func (d *differ) product() string { return engineProducts[d.rnd.IntN(len(engineProducts))] }

func (d *differ) rule(product string) validation.Rule {
	r, ok := d.policy.Rule(product)
	if !ok {
		d.t.Fatalf("no rule for %s", product)
	}
	return r
}

// free is a rule with no rules: what the history uses to build any ledger,
// one the random policy may already forbid.
func free(product string) validation.Rule {
	return validation.Rule{Product: product, Title: validation.Title(product), HoldTTL: time.Hour, Redeemers: []string{"svc"}, Version: "free"}
}

func (d *differ) standing() validation.Standing {
	return validation.Standing{Block: d.block, Case: d.kase, Grants: slices.Clone(d.grants), Hold: d.hold, Ended: d.ended, Score: d.score}
}

func (d *differ) importGrant() {
	p := d.product()
	g, err := d.s.Import(context.Background(), validation.ImportRequest{Rule: free(p), CustomerID: d.customer,
		CheckID: newID(d.t, validation.NewImportID, d.customer), Actor: "ops", GrantedAt: d.now, Now: d.now})
	if err != nil {
		d.t.Fatalf("import: %v", err)
	}
	d.grants = append(d.grants, g)
}

// importUnderRules compares an import under the policy: the limits (a
// family counting the live hold) and the cooling-off periods.
func (d *differ) importUnderRules() {
	p := d.product()
	rule := d.rule(p)
	want := rule.GrantViolations(nil, d.standing(), d.now)
	g, err := d.s.Import(context.Background(), validation.ImportRequest{Rule: rule, CustomerID: d.customer,
		CheckID: newID(d.t, validation.NewImportID, d.customer), Actor: "ops", GrantedAt: d.now, Now: d.now})
	d.decisions++
	d.refusedAs("import of "+p, err, want)
	if err == nil {
		d.grants = append(d.grants, g)
	}
}

func (d *differ) release() {
	if len(d.grants) == 0 {
		return
	}
	p := d.grants[d.rnd.IntN(len(d.grants))].Product
	g, err := d.s.Release(context.Background(), validation.ReleaseRequest{CustomerID: d.customer, Product: p, Actor: "ops", Now: d.now,
		KeepEnded: validation.MaxCoolingOff})
	if err != nil {
		d.t.Fatalf("release: %v", err)
	}
	d.grants = slices.DeleteFunc(d.grants, func(x validation.Grant) bool { return x.CheckID == g.CheckID })
	d.ended[p] = d.now
}

// placeFree places a hold under no rules, when there is none.
func (d *differ) placeFree() {
	if d.hold != nil || d.block != nil {
		return
	}
	d.place(free(d.product()))
}

// place asks for a check under rule; it returns the store's error.
func (d *differ) place(rule validation.Rule) error {
	secret := make([]byte, validation.OTPSecretSize)
	rand.Read(secret)
	req := validation.HoldRequest{Rule: rule, CustomerID: d.customer, CheckID: newID(d.t, validation.NewCheckID, d.customer),
		Secret: secret, TokenHash: validation.TokenHash(validation.TokenSecret(secret)), Actor: "branch", Now: d.now,
		Rating: validation.RatingInput{Skip: true}}
	c, _, err := d.s.Hold(context.Background(), req)
	if err == nil {
		d.hold, d.token = &c, req.TokenHash
	}
	return err
}

func (d *differ) cancel() {
	if d.hold == nil {
		return
	}
	if _, err := d.s.Cancel(context.Background(), validation.CancelRequest{CustomerID: d.customer, CheckID: d.hold.ID, Actor: "ops", Now: d.now}); err != nil {
		d.t.Fatalf("cancel: %v", err)
	}
	d.hold = nil
}

func (d *differ) toggleBlock() {
	ctx := context.Background()
	if d.block != nil && d.rnd.IntN(2) == 0 {
		if err := d.s.Unblock(ctx, d.customer, "ops", d.now); err != nil {
			d.t.Fatalf("unblock: %v", err)
		}
		d.block = nil
		return
	}
	var until time.Time
	if d.rnd.IntN(2) == 0 {
		until = d.now.Add(time.Duration(1+d.rnd.Int64N(4*24*3600*1000)) * time.Millisecond)
	}
	if _, err := d.s.Block(ctx, validation.BlockRequest{CustomerID: d.customer, Reason: "fraud review", Until: until, Actor: "ops", Now: d.now}); err != nil {
		d.t.Fatalf("block: %v", err)
	}
	d.block, d.hold = &validation.Block{Reason: "fraud review", Since: d.now, Until: until, By: "ops"}, nil
}

func (d *differ) toggleCase() {
	ctx := context.Background()
	if d.kase != nil {
		if _, err := d.s.ResolveCase(ctx, d.customer, "ops", "resolved", d.now); err != nil {
			d.t.Fatalf("resolve case: %v", err)
		}
		d.kase = nil
		return
	}
	c := validation.Case{CustomerID: d.customer, Products: []string{d.product()}, Detail: "Contact the customer.", OpenedAt: d.now, RunID: "run"}
	if err := d.s.OpenCase(ctx, c, d.now); err != nil {
		d.t.Fatalf("open case: %v", err)
	}
	d.kase = &c
}

// eligibility compares a dry run of a random product, with a fresh score,
// the cached one or none, or the rating skipped.
func (d *differ) eligibility() {
	p := d.product()
	rule := d.rule(p)
	st := d.standing()
	in := validation.RatingInput{CacheTTL: 1000 * time.Hour}
	switch d.rnd.IntN(4) {
	case 0:
		n := d.rnd.IntN(1001)
		in.Score, st.Score = &n, &n
	case 1:
		in.Skip, st.SkipRating = true, true
	}
	want, wantRating, needRating := rule.Evaluate(st, d.now)
	res, err := d.s.Eligibility(context.Background(), validation.EligibilityRequest{Rule: rule, CustomerID: d.customer, Rating: in, Now: d.now})
	d.decisions++
	if needRating {
		if !errors.Is(err, validation.ErrRatingNeeded) {
			d.t.Fatalf("%s: eligibility of %s: got %v, %v; the reference needs the rating", d, p, res, err)
		}
		return
	}
	if err != nil {
		d.t.Fatalf("%s: eligibility of %s: %v", d, p, err)
	}
	if in.Score != nil && rule.MinRating > 0 {
		d.score = in.Score // the store cached it
	}
	d.same("eligibility of "+p, res.Violations, want)
	if res.Rating != wantRating {
		d.t.Fatalf("%s: eligibility of %s: rating %s, reference %s", d, p, res.Rating, wantRating)
	}
}

// check compares a check of a random product (the rating skipped, so that
// no bureau is needed).
func (d *differ) check() {
	p := d.product()
	rule := d.rule(p)
	st := d.standing()
	st.SkipRating = true
	want, _, _ := rule.Evaluate(st, d.now)
	err := d.place(rule)
	d.decisions++
	d.refusedAs("check of "+p, err, want)
}

// redeem compares a redemption of the live hold under the policy: an open
// case concerning it refuses and keeps the hold; else the limits and
// cooling-off periods decide, and a refusal cancels the hold.
func (d *differ) redeem() {
	if d.hold == nil {
		return
	}
	h := *d.hold
	rule := d.rule(h.Product)
	caseOnly := validation.Standing{Case: d.kase, SkipRating: true}
	want, _, _ := rule.Evaluate(caseOnly, d.now)
	if len(want) == 0 {
		st := d.standing()
		st.Hold = nil
		want = rule.GrantViolations(nil, st, d.now)
	}
	g, _, err := d.s.Redeem(context.Background(), validation.RedeemRequest{Rule: rule, CustomerID: d.customer, CheckID: h.ID,
		TokenHash: d.token, Actor: "svc", Now: d.now, MaxAttempts: 5})
	d.decisions++
	d.refusedAs("redemption of "+h.Product, err, want)
	switch {
	case err == nil:
		d.grants, d.hold = append(d.grants, g), nil
	case want[0].Reason != validation.ReasonCaseOpen:
		d.hold = nil
	}
}

// refusedAs fails unless err is the refusal want lists (none: no error).
func (d *differ) refusedAs(what string, err error, want []validation.Violation) {
	d.t.Helper()
	if len(want) == 0 {
		if err != nil {
			d.t.Fatalf("%s: %s: %v; the reference allows it", d, what, err)
		}
		return
	}
	var e *validation.Error
	if !errors.As(err, &e) {
		d.t.Fatalf("%s: %s: %v; the reference refuses it: %s", d, what, err, words(want))
	}
	d.same(what, e.Violations, want)
}

func (d *differ) same(what string, got, want []validation.Violation) {
	d.t.Helper()
	for _, v := range want {
		d.seen[v.Reason]++
	}
	if g, w := words(got), words(want); g != w {
		d.t.Fatalf("%s: %s differs from the reference\n store:     %s\n reference: %s", d, what, g, w)
	}
}

// String names the history and its state, for a failure.
func (d *differ) String() string {
	return fmt.Sprintf("customer %s at %d (grants %d, hold %v, ended %v, block %v, case %v)",
		d.customer, d.now.UnixMilli(), len(d.grants), d.hold != nil, d.ended, d.block != nil, d.kase != nil)
}

// words writes violations with every field, times in milliseconds.
func words(vs []validation.Violation) string {
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	}
	num := func(n *int) string {
		if n == nil {
			return "-"
		}
		return strconv.Itoa(*n)
	}
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "[%s product=%s check=%s since=%d until=%d by=%s note=%q products=%v required=%s score=%s rule=%s limit=%d held=",
			v.Reason, v.Product, v.CheckID, ms(v.Since), ms(v.Until), v.By, v.Note, v.Products, num(v.RequiredRating), num(v.Rating), v.Rule, v.Limit)
		for _, h := range v.Held {
			fmt.Fprintf(&b, "(%s %s %d %d)", h.Product, h.CheckID, ms(h.Since), ms(h.Until))
		}
		b.WriteString("] ")
	}
	return b.String()
}

func newID(tb testing.TB, f func(string) (string, error), customer string) string {
	id, err := f(customer)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}
