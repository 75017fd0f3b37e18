package inmem

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// Hold implements validation.Store (check.lua).
func (s *Store) Hold(_ context.Context, req validation.HoldRequest) (validation.Check, bool, error) {
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()

	key := idemKey{req.CustomerID, req.IdempotencyKey}
	if p, ok := s.idem[key]; ok && req.IdempotencyKey != "" && now.Before(p.until) {
		e := c.find(p.checkID, now, s.opts.Retention)
		// A check given up as lost was never delivered: decide again.
		if e == nil || e.c.EndReason != "unknown_outcome" {
			if p.req != req.RequestHash {
				return validation.Check{}, false, validation.IdempotencyKeyReused()
			}
			if e == nil {
				return validation.Check{}, false, validation.CheckNotFound()
			}
			if e == c.hold {
				e.delivered = true
			}
			return public(e), true, nil
		}
	}

	vs, _, err := c.evaluate(req.Rule, req.Rating, now)
	if err != nil {
		return validation.Check{}, false, err
	}
	if len(vs) > 0 {
		c.appendEvents(validation.Event{At: now, Type: validation.EventRefused, Product: req.Rule.Product, Actor: req.Actor,
			Agent: req.AgentID, Reason: vs[0].Reason, Reasons: reasons(vs), PolicyVersion: req.Rule.Version})
		return validation.Check{}, false, validation.Refusal(vs)
	}
	if c.tombstones[req.CheckID] {
		return validation.Check{}, false, validation.CheckAbandoned()
	}
	ttl := time.Duration(req.Rule.HoldTTL.Milliseconds()) * time.Millisecond
	h := &entry{token: req.TokenHash, c: validation.Check{
		ID: req.CheckID, CustomerID: req.CustomerID, Product: req.Rule.Product, Status: validation.StatusHeld,
		Fence: c.nextFence(now), CreatedAt: now, ExpiresAt: now.Add(ttl), PlacedBy: req.Actor, AgentID: req.AgentID,
		Secret: slices.Clone(req.Secret), PolicyVersion: req.Rule.Version,
	}}
	c.hold, c.fails, c.last = h, 0, h.c.ID
	c.lastOf[h.c.Product] = h.c.ID
	if req.IdempotencyKey != "" {
		s.idem[key] = idemRecord{req: req.RequestHash, checkID: h.c.ID, until: now.Add(req.IdempotencyTTL)}
	}
	return public(h), false, nil
}

// Redeem implements validation.Store (redeem_token.lua, redeem_otp.lua).
func (s *Store) Redeem(_ context.Context, req validation.RedeemRequest) (validation.Grant, bool, error) {
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()
	if req.CheckID != "" {
		return s.redeemToken(c, req, now)
	}
	return s.redeemOTP(c, req, now)
}

func (s *Store) redeemToken(c *customer, req validation.RedeemRequest, now time.Time) (validation.Grant, bool, error) {
	tokenOK := func(e *entry) bool { return e.token == req.TokenHash }
	h := c.hold
	if h == nil || h.c.ID != req.CheckID {
		return s.ended(c, req.CheckID, req.Actor, "", "", tokenOK, now)
	}
	if !tokenOK(h) {
		return validation.Grant{}, false, validation.TokenMismatch("secret")
	}
	if h.c.Product != req.Rule.Product {
		return validation.Grant{}, false, validation.TokenMismatch("product")
	}
	if err := c.caseRefusal(req.Rule, req.Actor, now); err != nil {
		return validation.Grant{}, false, err
	}
	return c.grant(req.Rule, req.Actor, "", now)
}

func (s *Store) redeemOTP(c *customer, req validation.RedeemRequest, now time.Time) (validation.Grant, bool, error) {
	h := c.hold
	if h == nil || h.c.Product != req.Rule.Product {
		return s.ended(c, cmp.Or(c.lastOf[req.Rule.Product], c.last), req.Actor, req.Code, req.Rule.Product, nil, now)
	}
	if err := c.caseRefusal(req.Rule, req.Actor, now); err != nil {
		return validation.Grant{}, false, err
	}
	window := cmp.Or(req.OTPWindow, validation.DefaultOTPWindow)
	budget := cmp.Or(req.OTPFailures, validation.DefaultOTPFailures)
	cfails, since := c.otpFails, c.otpSince
	if !now.Before(since.Add(window)) {
		cfails, since = 0, now
	}
	if cfails >= budget {
		return validation.Grant{}, false, validation.OTPRateLimited(since.Add(window).Sub(now))
	}
	// Counted before it is verified, as the script does.
	c.fails++
	period, skew := cmp.Or(req.OTPPeriod, validation.DefaultOTPPeriod), cmp.Or(req.OTPSkew, validation.DefaultOTPSkew)
	if totpOK(h.c.Secret, req.Code, now, period, skew) {
		return c.grant(req.Rule, req.Actor, otpDigest(h.c.ID, req.Code), now)
	}
	cfails++
	c.otpFails, c.otpSince = cfails, since
	if cfails == budget {
		c.appendEvents(validation.Event{At: now, Type: validation.EventOTPRateLimited, Product: req.Rule.Product, Actor: req.Actor})
	}
	if c.fails >= req.MaxAttempts {
		c.finish(validation.StatusCancelled, req.Actor, validation.Event{Type: validation.EventCancelled, Reason: validation.ReasonOTPLocked}, now)
		return validation.Grant{}, false, validation.OTPLocked()
	}
	c.appendEvents(validation.Event{At: now, Type: validation.EventOTPFailed, Product: req.Rule.Product, CheckID: h.c.ID, Actor: req.Actor, Fence: h.c.Fence})
	return validation.Grant{}, false, validation.WrongCode(req.MaxAttempts - c.fails)
}

// ended answers a redemption of check id, which is not the live hold
// (redeem.lua's ended): a replay for the client that redeemed it while the
// grant exists (over OTP only with the same code), never for a released one.
func (s *Store) ended(c *customer, id, actor, code, product string, accept func(*entry) bool, now time.Time) (validation.Grant, bool, error) {
	unknown := validation.HoldExpired("unknown")
	if id == "" {
		return validation.Grant{}, false, unknown
	}
	if g := c.grants[id]; g != nil {
		switch {
		case product != "" && g.c.Product != product:
			return validation.Grant{}, false, unknown
		case accept != nil && !accept(g):
			return validation.Grant{}, false, validation.TokenMismatch("secret")
		case g.c.RedeemedBy != actor:
			return validation.Grant{}, false, validation.AlreadyRedeemed(g.c.RedeemedBy)
		case code != "" && g.otp != otpDigest(id, code):
			return validation.Grant{}, false, validation.NotTheRedeemingCode()
		}
		return grantOf(g), true, nil
	}
	r := c.record(id, now, s.opts.Retention)
	switch {
	case r == nil || product != "" && r.c.Product != product:
		return validation.Grant{}, false, unknown
	case accept != nil && !accept(r):
		return validation.Grant{}, false, validation.TokenMismatch("secret")
	case r.c.Status == validation.StatusRedeemed:
		return validation.Grant{}, false, validation.GrantReleased(id)
	case r.c.EndReason == string(validation.ReasonOTPLocked):
		return validation.Grant{}, false, validation.OTPLocked()
	}
	return validation.Grant{}, false, validation.HoldExpired(string(r.c.Status))
}

// caseRefusal refuses the redemption of the live hold while an open case
// concerns its product; the hold is kept, the attempt audited.
func (c *customer) caseRefusal(r validation.Rule, actor string, now time.Time) error {
	v := c.caseViolation(r, now)
	if v == nil {
		return nil
	}
	h := c.hold.c
	c.appendEvents(validation.Event{At: now, Type: validation.EventRefused, Product: h.Product, CheckID: h.ID, Actor: actor,
		Fence: h.Fence, Reason: v.Reason, Reasons: []validation.Reason{v.Reason}, PolicyVersion: r.Version})
	return validation.Refusal([]validation.Violation{*v})
}

// grant turns the live hold into a grant, unless the rule's limits or
// cooling-off periods now refuse it (then the hold is cancelled with the
// first violation as its reason). The hold is the product asked for, so
// it is not counted against a family.
func (c *customer) grant(r validation.Rule, actor, otp string, now time.Time) (validation.Grant, bool, error) {
	st := c.standing(now)
	st.Hold = nil
	if vs := r.GrantViolations(nil, st, now); len(vs) > 0 {
		c.finish(validation.StatusCancelled, actor, validation.Event{Type: validation.EventCancelled, Reason: vs[0].Reason, PolicyVersion: r.Version}, now)
		return validation.Grant{}, false, validation.Refusal(vs)
	}
	h := c.hold
	h.c.RedeemedBy, h.c.GrantedAt, h.otp, h.version = actor, now, otp, r.Version
	return grantOf(c.finish(validation.StatusRedeemed, actor, validation.Event{Type: validation.EventRedeemed, PolicyVersion: r.Version}, now)), false, nil
}

// Check implements validation.Store (get.lua).
func (s *Store) Check(_ context.Context, customerID, checkID string, now time.Time) (validation.Check, error) {
	now = ms(now)
	c := s.begin(customerID, now)
	defer s.mu.Unlock()
	e := c.find(checkID, now, s.opts.Retention)
	if e == nil {
		return validation.Check{}, validation.CheckGone(checkID, s.opts.Retention)
	}
	return public(e), nil
}

// Cancel implements validation.Store (cancel.lua).
func (s *Store) Cancel(_ context.Context, req validation.CancelRequest) (validation.Check, error) {
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()
	e := c.find(req.CheckID, now, s.opts.Retention)
	if e == nil {
		return validation.Check{}, validation.CheckNotFound()
	}
	if req.Products != nil && !slices.Contains(req.Products, e.c.Product) && (req.Placer == "" || e.c.PlacedBy != req.Placer) {
		return validation.Check{}, validation.CancelForbidden(e.c.Product)
	}
	if e != c.hold {
		return validation.Check{}, validation.CheckNotHeld(e.c.Status)
	}
	ev := validation.Event{Type: validation.EventCancelled, Agent: req.Agent, Reason: "cancelled"}
	return public(c.finish(validation.StatusCancelled, req.Actor, ev, now)), nil
}

// Customer implements validation.Store (customer.lua).
func (s *Store) Customer(_ context.Context, customerID string, now time.Time) (validation.Customer, error) {
	now = ms(now)
	c := s.begin(customerID, now)
	defer s.mu.Unlock()
	cust := validation.Customer{ID: customerID, Grants: []validation.Grant{}}
	if c.hold != nil {
		h := public(c.hold)
		h.Secret = nil
		cust.Hold = &h
	}
	if b := c.liveBlock(now); b != nil {
		cp := *b
		cust.Block = &cp
	}
	for _, g := range c.grants {
		cust.Grants = append(cust.Grants, grantOf(g))
	}
	slices.SortFunc(cust.Grants, func(a, b validation.Grant) int {
		return cmp.Or(a.GrantedAt.Compare(b.GrantedAt), cmp.Compare(a.CheckID, b.CheckID))
	})
	return cust, nil
}

// Release implements validation.Store (release.lua).
func (s *Store) Release(_ context.Context, req validation.ReleaseRequest) (validation.Grant, error) {
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()
	var latest *entry
	for _, g := range c.grants {
		if g.c.Product != req.Product || req.CheckID != "" && g.c.ID != req.CheckID {
			continue
		}
		if latest == nil || cmp.Or(latest.c.GrantedAt.Compare(g.c.GrantedAt), cmp.Compare(latest.c.ID, g.c.ID)) < 0 {
			latest = g
		}
	}
	if latest == nil {
		return validation.Grant{}, validation.GrantNotFound(req.CustomerID, req.Product)
	}
	delete(c.grants, latest.c.ID)
	if !latest.imported {
		// Readable for the retention, so a replay is told grant_released.
		c.records[latest.c.ID] = latest
	}
	c.endedAt(req.Product, now, cmp.Or(req.KeepEnded, validation.MinKeepEnded))
	c.appendEvents(validation.Event{At: now, Type: validation.EventReleased, Product: req.Product, CheckID: latest.c.ID, Actor: req.Actor, Fence: latest.c.Fence})
	return grantOf(latest), nil
}

// Import implements validation.Store (import.lua).
func (s *Store) Import(_ context.Context, req validation.ImportRequest) (validation.Grant, error) {
	if req.Rule.Product == "" {
		return validation.Grant{}, validation.Errorf(validation.ReasonInvalidRequest, "an import names its product")
	}
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()
	// The live hold counts against a family: the product it holds may
	// yet be redeemed.
	if vs := req.Rule.GrantViolations(nil, c.standing(now), now); len(vs) > 0 {
		return validation.Grant{}, validation.Refusal(vs)
	}
	g := &entry{imported: true, version: req.Rule.Version, c: validation.Check{ID: req.CheckID, CustomerID: req.CustomerID, Product: req.Rule.Product,
		Status: "imported", Fence: c.nextFence(now), GrantedAt: ms(req.GrantedAt), RedeemedBy: req.Actor, PolicyVersion: req.Rule.Version}}
	c.grants[g.c.ID] = g
	c.appendEvents(validation.Event{At: now, Type: validation.EventImported, Product: g.c.Product, CheckID: g.c.ID, Actor: req.Actor, Fence: g.c.Fence,
		PolicyVersion: req.Rule.Version})
	return grantOf(g), nil
}

// Eligibility implements validation.Store (eligibility.lua).
func (s *Store) Eligibility(_ context.Context, req validation.EligibilityRequest) (validation.EligibilityResult, error) {
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()
	vs, state, err := c.evaluate(req.Rule, req.Rating, now)
	if err != nil {
		return validation.EligibilityResult{}, err
	}
	return validation.EligibilityResult{Violations: append([]validation.Violation{}, vs...), Rating: state}, nil
}

// Block implements validation.Store (block.lua).
func (s *Store) Block(_ context.Context, req validation.BlockRequest) (*validation.Check, error) {
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()
	b := &validation.Block{Reason: req.Reason, Since: now, By: req.Actor}
	if !req.Until.IsZero() {
		b.Until = ms(req.Until)
	}
	c.block = b
	c.appendEvents(validation.Event{At: now, Type: validation.EventBlocked, Actor: req.Actor, Note: req.Reason})
	if c.hold == nil {
		return nil, nil
	}
	ended := public(c.finish(validation.StatusCancelled, req.Actor, validation.Event{Type: validation.EventCancelled, Reason: validation.ReasonCustomerBlocked}, now))
	return &ended, nil
}

// Unblock implements validation.Store (unblock.lua).
func (s *Store) Unblock(_ context.Context, customerID, actor string, now time.Time) error {
	now = ms(now)
	c := s.begin(customerID, now)
	defer s.mu.Unlock()
	if c.liveBlock(now) == nil {
		return validation.NotBlocked(customerID)
	}
	c.block = nil
	c.appendEvents(validation.Event{At: now, Type: validation.EventUnblocked, Actor: actor})
	return nil
}

// Abandon implements validation.Store (abandon.lua).
func (s *Store) Abandon(_ context.Context, req validation.AbandonRequest) (validation.AbandonOutcome, error) {
	now := ms(req.Now)
	c := s.begin(req.CustomerID, now)
	defer s.mu.Unlock()
	e := c.find(req.CheckID, now, s.opts.Retention)
	switch {
	case e == nil:
		c.records[req.CheckID] = &entry{c: validation.Check{ID: req.CheckID, CustomerID: req.CustomerID, Status: validation.StatusCancelled,
			CreatedAt: now, EndedAt: now, EndedBy: req.Actor, EndReason: "unknown_outcome"}}
		c.tombstones[req.CheckID] = true
		return validation.AbandonTombstone, nil
	case e != c.hold:
		return validation.AbandonEnded, nil
	case e.delivered:
		return validation.AbandonDelivered, nil
	}
	c.finish(validation.StatusCancelled, req.Actor, validation.Event{Type: validation.EventCancelled, Reason: "unknown_outcome"}, now)
	return validation.AbandonCancelled, nil
}

// Audit implements validation.Store: both lists newest first (an event
// written late sorts into place), the live hold's checked event included,
// merged, filtered and limited as redisstore's Audit does.
func (s *Store) Audit(_ context.Context, customerID string, limit int, now time.Time, types ...validation.EventType) ([]validation.Event, error) {
	now = ms(now)
	c := s.begin(customerID, now)
	defer s.mu.Unlock()
	lists := [2][]validation.Event{slices.Clone(c.events), slices.Clone(c.tries)}
	if c.hold != nil {
		lists[0] = append(lists[0], checked(c.hold.c))
	}
	for i := range lists {
		slices.Reverse(lists[i]) // kept oldest first; MergeAudit's stable sort keeps ties newest first
	}
	return validation.MergeAudit(lists[0], lists[1], limit, types...), nil
}
