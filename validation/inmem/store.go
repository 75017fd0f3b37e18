package inmem

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// Options configure a Store; the zero value of each field means its default.
type Options struct {
	Retention time.Duration // how long ended checks stay readable; default 24h, as redisstore's
}

// Store is a validation.Store in memory. The zero value is not usable: call New.
type Store struct {
	mu        sync.Mutex
	opts      Options
	customers map[string]*customer
	idem      map[idemKey]idemRecord
}

var _ validation.Store = (*Store)(nil)

// New returns an empty Store.
func New(opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = 24 * time.Hour
	}
	return &Store{opts: opts, customers: map[string]*customer{}, idem: map[idemKey]idemRecord{}}
}

// entry is a check wherever it lives (the live hold, an ended record, a
// grant) and what the store keeps beside it, as redisstore's one encoding.
type entry struct {
	c         validation.Check
	token     string // the digest of the approval token's secret
	otp       string // a grant redeemed by OTP: otpDigest of its code
	imported  bool
	version   string // a grant: the policy version it was redeemed (or imported) under
	delivered bool   // an idempotent replay gave the held check to its client
}

type customer struct {
	id         string
	fence      int64
	hold       *entry // the live hold; may have passed ExpiresAt until settled
	fails      int    // wrong codes on the live hold
	last       string // the newest check
	lastOf     map[string]string
	records    map[string]*entry // ended checks that are not grants
	grants     map[string]*entry
	tombstones map[string]bool
	block      *validation.Block
	rating     *int
	ratingEnd  time.Time
	otpFails   int
	otpSince   time.Time
	kase       *openCase
	ended      map[string]time.Time // product → when its last grant ended
	endedUntil time.Time            // when ended is forgotten, whole
	events     []validation.Event   // state changes, oldest first
	tries      []validation.Event   // attempts that changed nothing, oldest first
}

type openCase struct {
	products []string
	note     string
	opened   time.Time
	run      string
}

type idemKey struct{ customer, key string }

type idemRecord struct {
	req, checkID string
	until        time.Time
}

// ms truncates t to the millisecond in UTC, as redisstore keeps times.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// begin locks the store and returns the customer, its expired hold settled.
// The caller unlocks.
func (s *Store) begin(id string, now time.Time) *customer {
	s.mu.Lock()
	c := s.customers[id]
	if c == nil {
		c = &customer{id: id, lastOf: map[string]string{}, records: map[string]*entry{}, grants: map[string]*entry{}, tombstones: map[string]bool{},
			ended: map[string]time.Time{}}
		s.customers[id] = c
	}
	c.settle(now)
	return c
}

// settle records the expiry of a hold whose TTL ran out (prelude's settle).
func (c *customer) settle(now time.Time) {
	h := c.hold
	if h == nil || now.Before(h.c.ExpiresAt) {
		return
	}
	c.hold = nil
	h.c.Status, h.c.EndedAt, h.c.EndedBy, h.c.Secret = validation.StatusExpired, h.c.ExpiresAt, "arbiter", nil
	c.records[h.c.ID] = h
	c.appendEvents(checked(h.c), validation.Event{At: h.c.ExpiresAt, Type: validation.EventExpired, Product: h.c.Product,
		CheckID: h.c.ID, Actor: "arbiter", Fence: h.c.Fence})
}

func checked(c validation.Check) validation.Event {
	return validation.Event{At: c.CreatedAt, Type: validation.EventChecked, Product: c.Product, CheckID: c.ID,
		Actor: c.PlacedBy, Agent: c.AgentID, Fence: c.Fence, PolicyVersion: c.PolicyVersion}
}

// appendEvents appends events, all of one kind (state changes or attempts).
func (c *customer) appendEvents(evs ...validation.Event) {
	if evs[0].Type.Attempt() {
		c.tries = append(c.tries, evs...)
		return
	}
	c.events = append(c.events, evs...)
}

// record returns the ended check id, unless it ended longer than retention ago.
func (c *customer) record(id string, now time.Time, retention time.Duration) *entry {
	r := c.records[id]
	if r == nil || r.c.EndedAt.Add(retention).Before(now) {
		return nil
	}
	return r
}

// find returns the live hold id, or its grant (not an import), or its record.
func (c *customer) find(id string, now time.Time, retention time.Duration) *entry {
	if c.hold != nil && c.hold.c.ID == id {
		return c.hold
	}
	if g := c.grants[id]; g != nil && !g.imported {
		return g
	}
	return c.record(id, now, retention)
}

func (c *customer) nextFence(now time.Time) int64 {
	c.fence = max(c.fence+1, now.UnixMilli())
	return c.fence
}

// finish ends the live hold: redeemed makes it a grant, any other status a
// record; the audit gets its checked event and ev (prelude's hold_finish).
func (c *customer) finish(status validation.CheckStatus, actor string, ev validation.Event, now time.Time) *entry {
	h := c.hold
	c.hold = nil
	h.c.Status, h.c.EndedAt, h.c.EndedBy, h.c.Secret = status, now, actor, nil
	if status != validation.StatusRedeemed && ev.Reason != "" {
		h.c.EndReason = string(ev.Reason)
	}
	ev.At, ev.Product, ev.CheckID, ev.Actor, ev.Fence = now, h.c.Product, h.c.ID, actor, h.c.Fence
	if status == validation.StatusRedeemed {
		c.grants[h.c.ID] = h
	} else {
		c.records[h.c.ID] = h
	}
	c.appendEvents(checked(h.c), ev)
	return h
}

func (c *customer) liveBlock(now time.Time) *validation.Block {
	if c.block != nil && (c.block.Until.IsZero() || c.block.Until.After(now)) {
		return c.block
	}
	return nil
}

// standing is what the rules read of the customer at now (rules.go's
// Standing): the live block, the open case, the ledger, the live hold and
// when its products ended. Score and SkipRating are the caller's.
func (c *customer) standing(now time.Time) validation.Standing {
	st := validation.Standing{Block: c.liveBlock(now), Case: c.caseOf(), Grants: make([]validation.Grant, 0, len(c.grants))}
	for _, g := range c.grants {
		st.Grants = append(st.Grants, grantOf(g))
	}
	if c.hold != nil {
		h := public(c.hold)
		st.Hold = &h
	}
	if len(c.ended) > 0 && !now.Before(c.endedUntil) {
		clear(c.ended)
	}
	if len(c.ended) > 0 {
		st.Ended = maps.Clone(c.ended)
	}
	return st
}

// endedAt remembers that the customer's product ended at now. The ends
// are forgotten together, keep after the newest, as redisstore's K_ENDED
// expires: keep is at least the longest cooling-off period
// (Policy.KeepEnded; validation.MinKeepEnded when a release gives none),
// so no rule misses an end it could still apply.
func (c *customer) endedAt(product string, now time.Time, keep time.Duration) {
	if !now.Before(c.endedUntil) {
		clear(c.ended)
	}
	c.ended[product], c.endedUntil = now, now.Add(keep)
}

// caseOf is the open case as the rules read it; nil for none.
func (c *customer) caseOf() *validation.Case {
	k := c.kase
	if k == nil {
		return nil
	}
	return &validation.Case{CustomerID: c.id, Products: slices.Clone(k.products), Detail: k.note, OpenedAt: k.opened, RunID: k.run}
}

// evaluate applies every rule of a check with Rule.Evaluate, the engine's
// reference. The score is the fresh one when given (cached for CacheTTL,
// even when the check is refused), else the cached one while it is valid.
// With no score known and nothing else failing it returns
// validation.ErrRatingNeeded, having changed nothing.
func (c *customer) evaluate(r validation.Rule, rating validation.RatingInput, now time.Time) ([]validation.Violation, validation.RatingState, error) {
	st := c.standing(now)
	st.SkipRating = rating.Skip
	switch {
	case r.MinRating == 0 || rating.Skip:
	case rating.Score != nil:
		c.rating, c.ratingEnd = ptr(*rating.Score), now.Add(rating.CacheTTL)
		st.Score = ptr(*rating.Score)
	case c.rating != nil && now.Before(c.ratingEnd):
		st.Score = ptr(*c.rating)
	}
	vs, state, needRating := r.Evaluate(st, now)
	if needRating {
		return nil, "", validation.ErrRatingNeeded
	}
	return vs, state, nil
}

// caseViolation is the case_open violation of the rule's product while the
// open case concerns it (as Evaluate decides it); nil otherwise.
func (c *customer) caseViolation(r validation.Rule, now time.Time) *validation.Violation {
	if c.kase == nil {
		return nil
	}
	vs, _, _ := r.Evaluate(validation.Standing{Case: c.caseOf(), SkipRating: true}, now)
	for _, v := range vs {
		if v.Reason == validation.ReasonCaseOpen {
			return &v
		}
	}
	return nil
}

func ptr(n int) *int { return &n }

func reasons(vs []validation.Violation) []validation.Reason {
	out := make([]validation.Reason, len(vs))
	for i, v := range vs {
		out[i] = v.Reason
	}
	return out
}

func grantOf(e *entry) validation.Grant {
	return validation.Grant{CustomerID: e.c.CustomerID, Product: e.c.Product, CheckID: e.c.ID, Fence: e.c.Fence,
		GrantedAt: e.c.GrantedAt, RedeemedBy: e.c.RedeemedBy, PolicyVersion: e.version}
}

// public returns a copy of the check that shares nothing with the store.
func public(e *entry) validation.Check {
	c := e.c
	c.Secret = slices.Clone(c.Secret)
	return c
}

// Ping implements validation.Store: memory is always there.
func (s *Store) Ping(context.Context) error { return nil }

// OpenCase opens the customer's reconciliation case, or refreshes it
// (keeping when it was first opened), as redisstore's does: until
// ResolveCase, checks and redemptions of the case's products, and of the
// products that exclude one of them, are refused (validation.ErrCaseOpen).
// With ResolveCase it is the part of reconcile.Store that the
// contract suite's case tests need; inmem implements no more of it.
func (s *Store) OpenCase(_ context.Context, kase validation.Case, now time.Time) error {
	c := s.begin(kase.CustomerID, ms(now))
	defer s.mu.Unlock()
	opened := ms(kase.OpenedAt)
	if c.kase != nil {
		opened = c.kase.opened
	} else {
		c.appendEvents(validation.Event{At: ms(now), Type: validation.EventCaseOpened, Actor: validation.ReconcilerActor, Note: kase.Detail})
	}
	c.kase = &openCase{products: slices.Clone(kase.Products), note: kase.Detail, opened: opened, run: kase.RunID}
	return nil
}

// ResolveCase closes the customer's case: validation.ErrNotFound when none
// is open.
func (s *Store) ResolveCase(_ context.Context, customerID, actor, note string, now time.Time) (validation.Case, error) {
	c := s.begin(customerID, ms(now))
	defer s.mu.Unlock()
	if c.kase == nil {
		return validation.Case{}, validation.NoOpenCase(customerID)
	}
	k := c.kase
	c.kase = nil
	c.appendEvents(validation.Event{At: ms(now), Type: validation.EventCaseResolved, Actor: actor, Note: note})
	return validation.Case{CustomerID: customerID, Products: k.products, Detail: k.note, OpenedAt: k.opened, RunID: k.run}, nil
}
