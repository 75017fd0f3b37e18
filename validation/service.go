package validation

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Role is a permission a client holds.
type Role string

// The roles of the clients file.
const (
	RoleChecker  Role = "checker"  // create and read checks (cancel and see the OTP of its own); read customers and audit
	RoleRedeemer Role = "redeemer" // redeem, release and cancel the products it is a redeemer of
	RoleAdmin    Role = "admin"    // everything, and importing grants
)

// Actor is the authenticated caller of a Service method.
type Actor struct {
	ID string // client id
	// Agent is the signed-in branch agent the client acts for: set only by
	// an authenticated branch UI session, never from a request body (a
	// check's agent_id is the client's word and grants nothing).
	Agent string
	Roles []Role
}

// Placed reports whether the actor placed the check: the same client and,
// for a signed-in branch agent, the same agent. All agents share one
// client id, so without the second half every agent would see every other
// agent's codes.
func (a Actor) Placed(c Check) bool {
	return a.ID == c.PlacedBy && (a.Agent == "" || a.Agent == c.AgentID)
}

// Has reports whether the actor holds the role (admins hold every role).
func (a Actor) Has(r Role) bool {
	return slices.Contains(a.Roles, r) || slices.Contains(a.Roles, RoleAdmin)
}

// Defaults of Service.
const (
	DefaultMaxOTPAttempts = 5
	DefaultOTPFailures    = 10
	DefaultOTPWindow      = time.Hour
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultAuditLimit     = 50
	OTPSecretSize         = 20
	// DefaultOTPPeriod and DefaultOTPSkew are RFC 6238's: a code is
	// current for 30 s, and one period before and after is accepted.
	DefaultOTPPeriod = 30 * time.Second
	DefaultOTPSkew   = 1
)

// Service applies the policy through a Store. Its zero-value fields take
// their defaults; Store and Policy are required.
type Service struct {
	Store          Store
	Policy         *Policy
	Ratings        RatingSource     // the bureau; required when a product sets min_rating
	Now            func() time.Time // default time.Now
	MaxOTPAttempts int              // wrong codes that burn a hold; default 5
	// OTPFailures wrong codes per customer within OTPWindow, whatever the
	// hold, make OTP redemptions for that customer otp_rate_limited until
	// the window ends; defaults 10 and 1h. Token redemptions are not
	// affected.
	OTPFailures    int
	OTPWindow      time.Duration
	IdempotencyTTL time.Duration // default 24h
	// Abandoner, when set, gives up checks whose outcome is unknown (see
	// Abandoner); nil leaves their holds to expire.
	Abandoner Abandoner

	impactRunning atomic.Bool // a policy impact report is running (Impact)
}

// Abandoner takes a check whose Hold failed with ErrOutcomeUnknown and
// gives it up through Store.Abandon once the store answers again (package
// abandon's Queue). Add must not block: it is called on the request path.
type Abandoner interface {
	Add(customerID, checkID string)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// CheckInput is a request to check a customer for a product.
type CheckInput struct {
	CustomerID     string
	Product        string
	AgentID        string
	IdempotencyKey string
}

// Check decides whether the customer may take the product now and, if so,
// places a hold. Refusals are *Error (ErrCustomerBlocked, ErrCaseOpen,
// ErrRatingTooLow, ErrAlreadyHoldsProduct, ErrConflictingProduct,
// ErrHoldExists) with every failed rule in Violations; ErrRatingUnavailable when the bureau is needed,
// unavailable, and the policy says refuse.
func (s *Service) Check(ctx context.Context, actor Actor, in CheckInput) (Check, bool, error) {
	now := s.now()
	rule, err := s.rule(in.Product, now)
	if err != nil {
		return Check{}, false, err
	}
	in.CustomerID, err = ParseCustomerID(in.CustomerID)
	if err != nil {
		return Check{}, false, err
	}
	if !ValidAgentID(in.AgentID) {
		return Check{}, false, Errorf(ReasonInvalidRequest,
			"agent_id must be at most %d characters of UTF-8 text without control or format characters", MaxAgentIDLen)
	}
	if len(in.IdempotencyKey) > 255 {
		return Check{}, false, Errorf(ReasonInvalidRequest, "Idempotency-Key is longer than 255 characters")
	}
	id, err := NewCheckID(in.CustomerID)
	if err != nil {
		return Check{}, false, err
	}
	secret := make([]byte, OTPSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return Check{}, false, fmt.Errorf("check: otp secret: %w", err)
	}
	agent := in.AgentID
	if actor.Agent != "" {
		agent = actor.Agent
	}
	req := HoldRequest{
		Rule: rule, CustomerID: in.CustomerID, CheckID: id, Secret: secret, TokenHash: TokenHash(TokenSecret(secret)),
		Actor: actor.ID, AgentID: agent, Now: now,
		IdempotencyTTL: s.IdempotencyTTL, Rating: s.ratingInput(),
	}
	if req.IdempotencyTTL == 0 {
		req.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if in.IdempotencyKey != "" {
		// Keys are scoped to the client, so two clients never collide.
		req.IdempotencyKey = fingerprint(actor.ID, in.IdempotencyKey)
		req.RequestHash = fingerprint(in.CustomerID, in.Product, agent)
	}
	c, replayed, err := s.Store.Hold(ctx, req)
	if errors.Is(err, ErrRatingNeeded) {
		// Cold rating cache and nothing else in the way: ask the bureau
		// (bounded by its timeout and breaker), then decide atomically with
		// the fresh score, which the script caches.
		if req.Rating, err = s.fetchRating(ctx, in.CustomerID); err != nil {
			return Check{}, false, err
		}
		c, replayed, err = s.Store.Hold(ctx, req)
	}
	if errors.Is(err, ErrOutcomeUnknown) && s.Abandoner != nil {
		s.Abandoner.Add(in.CustomerID, id)
	}
	return c, replayed, s.explain(err, rule)
}

// RedeemToken redeems the hold named by an approval token's claims (the
// customer claimed, the product and the check id). The
// token's audience, issuer and expiry are the caller's to verify (package
// tokens), and its signature too unless proof carries the token's secret,
// which the store compares with the check's digest in the redemption
// itself; this checks the policy and the hold.
func (s *Service) RedeemToken(ctx context.Context, actor Actor, claimed, product, checkID string, proof TokenProof) (Grant, bool, error) {
	if proof.Secret == "" && !proof.Verified {
		return Grant{}, false, Errorf(ReasonTokenInvalid, "the token has no secret and its signature was not verified")
	}
	now := s.now()
	rule, err := s.redeemRule(actor, product, now)
	if err != nil {
		return Grant{}, false, err
	}
	customerID, ok := CustomerOfCheck(checkID)
	if !ok || customerID != CanonicalCustomerID(claimed) {
		return Grant{}, false, Errorf(ReasonTokenInvalid, "the token's check id does not belong to its customer")
	}
	g, replayed, err := s.Store.Redeem(ctx, RedeemRequest{
		Rule: rule, CustomerID: customerID, CheckID: checkID, TokenHash: TokenHash(proof.Secret),
		Actor: actor.ID, Now: now, MaxAttempts: s.maxAttempts(),
		OTPFailures: cmp.Or(s.OTPFailures, DefaultOTPFailures), OTPWindow: cmp.Or(s.OTPWindow, DefaultOTPWindow),
	})
	return g, replayed, s.explain(err, rule)
}

// RedeemOTP redeems the customer's live hold on product with a TOTP code.
// Wrong codes count against the hold: ErrOTPInvalid with AttemptsLeft, and
// the last allowed wrong code burns the hold (ErrOTPLocked); they also
// count against the customer, across holds: past OTPFailures within
// OTPWindow, ErrOTPRateLimited (with RetryAfter). A code that is not six
// ASCII digits is ErrInvalidRequest and costs no attempt.
func (s *Service) RedeemOTP(ctx context.Context, actor Actor, customerID, product, code string) (Grant, bool, error) {
	now := s.now()
	rule, err := s.redeemRule(actor, product, now)
	if err != nil {
		return Grant{}, false, err
	}
	customerID, err = ParseCustomerID(customerID)
	if err != nil {
		return Grant{}, false, err
	}
	if !wellFormedOTP(code) {
		return Grant{}, false, Errorf(ReasonInvalidRequest, "otp must be six digits 0-9")
	}
	g, replayed, err := s.Store.Redeem(ctx, RedeemRequest{
		Rule: rule, CustomerID: customerID, Code: code,
		Actor: actor.ID, Now: now, MaxAttempts: s.maxAttempts(),
		OTPFailures: cmp.Or(s.OTPFailures, DefaultOTPFailures), OTPWindow: cmp.Or(s.OTPWindow, DefaultOTPWindow),
	})
	return g, replayed, s.explain(err, rule)
}

// GetCheck returns a check by id: ErrCheckNotFound for ids that are
// malformed, unknown, or ended longer ago than the retention. The Secret
// of a held check, from which the current OTP is shown, is kept only when
// the actor placed the check (Actor.Placed): whoever reads another
// client's code could redeem it without the customer handing it over.
// Admins are no exception: they may cancel a hold, not take its code.
func (s *Service) GetCheck(ctx context.Context, actor Actor, checkID string) (Check, error) {
	customer, ok := CustomerOfCheck(checkID)
	if !ok {
		return Check{}, Errorf(ReasonCheckNotFound, "no check %q", checkID)
	}
	c, err := s.Store.Check(ctx, customer, checkID, s.now())
	if !actor.Placed(c) {
		c.Secret = nil
	}
	return c, err
}

// Cancel releases a live hold. Admins and signed-in branch agents (acting
// for the customer in front of them; the audit names the agent) may cancel
// any check; any other client only the checks it placed and those of the
// products it redeems. So a product service, which is a checker too, never
// cancels another product's holds, and a checker that redeems nothing
// cancels only its own. Otherwise ErrForbidden, decided by the store
// against the check it reads in the same atomic step.
func (s *Service) Cancel(ctx context.Context, actor Actor, checkID string) (Check, error) {
	customer, ok := CustomerOfCheck(checkID)
	if !ok {
		return Check{}, Errorf(ReasonCheckNotFound, "no check %q", checkID)
	}
	req := CancelRequest{CustomerID: customer, CheckID: checkID, Actor: actor.ID, Agent: actor.Agent, Now: s.now()}
	if !actor.Has(RoleAdmin) && actor.Agent == "" {
		req.Products = s.redeemable(actor)
		req.Placer = actor.ID
	}
	return s.Store.Cancel(ctx, req)
}

// redeemable lists the products the actor is a redeemer of (the role and
// the policy's redeemers both), never nil: a product service's products.
func (s *Service) redeemable(actor Actor) []string {
	out := []string{}
	if slices.Contains(actor.Roles, RoleRedeemer) {
		out = append(out, s.Policy.At(s.now()).RedeemableBy(actor.ID)...)
	}
	return out
}

// Customer returns what the customer holds and any live hold.
func (s *Service) Customer(ctx context.Context, customerID string) (Customer, error) {
	customerID, err := ParseCustomerID(customerID)
	if err != nil {
		return Customer{}, err
	}
	return s.Store.Customer(ctx, customerID, s.now())
}

// Release ends the customer's grant of a product (closed, or issuance
// compensated): the grant of checkID when given, else the most recent.
// Only the product's redeemers and admins may.
func (s *Service) Release(ctx context.Context, actor Actor, customerID, product, checkID string) (Grant, error) {
	now := s.now()
	if _, err := s.redeemRule(actor, product, now); err != nil {
		return Grant{}, err
	}
	customerID, err := ParseCustomerID(customerID)
	if err != nil {
		return Grant{}, err
	}
	return s.Store.Release(ctx, ReleaseRequest{CustomerID: customerID, Product: product, CheckID: checkID, Actor: actor.ID, Now: now,
		KeepEnded: s.Policy.KeepEnded()})
}

// Import records a grant that exists in a product system already (admins
// only), dated grantedAt (zero: now; never in the future); refused like a
// check when it would break the policy.
func (s *Service) Import(ctx context.Context, actor Actor, customerID, product string, grantedAt time.Time) (Grant, error) {
	if !actor.Has(RoleAdmin) {
		return Grant{}, Errorf(ReasonForbidden, "only admins import grants")
	}
	now := s.now()
	rule, err := s.rule(product, now)
	if err != nil {
		return Grant{}, err
	}
	customerID, err = ParseCustomerID(customerID)
	if err != nil {
		return Grant{}, err
	}
	id, err := NewImportID(customerID)
	if err != nil {
		return Grant{}, err
	}
	switch {
	case grantedAt.IsZero():
		grantedAt = now
	case grantedAt.After(now):
		// A grant dated in the future would sort after grants not yet
		// made and read "since" a day that has not come; omit granted_at
		// to mean now.
		return Grant{}, Errorf(ReasonInvalidRequest, "granted_at %s is in the future (now is %s)",
			grantedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	g, err := s.Store.Import(ctx, ImportRequest{
		Rule: rule, CustomerID: customerID, CheckID: id, Actor: actor.ID, GrantedAt: grantedAt, Now: now,
	})
	return g, s.explain(err, rule)
}

// Audit returns the customer's most recent events, newest first.
func (s *Service) Audit(ctx context.Context, customerID string, limit int, types ...EventType) ([]Event, error) {
	customerID, err := ParseCustomerID(customerID)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 200 {
		limit = DefaultAuditLimit
	}
	for _, t := range types {
		if !slices.Contains(EventTypes, t) {
			return nil, Errorf(ReasonInvalidRequest, "unknown event type %q", t)
		}
	}
	return s.Store.Audit(ctx, customerID, limit, s.now(), types...)
}

// rule is the product's rule in the policy version in force at now, the
// time the decision is made and stamped with, to the millisecond as the
// store keeps it (so that a check's CreatedAt selects the same version).
func (s *Service) rule(product string, now time.Time) (Rule, error) {
	v := s.Policy.At(now.Truncate(time.Millisecond))
	rule, ok := v.Rule(product)
	if !ok {
		return Rule{}, Errorf(ReasonInvalidRequest, "unknown product %q; known: %s", product, strings.Join(v.Names(), ", "))
	}
	return rule, nil
}

func (s *Service) redeemRule(actor Actor, product string, now time.Time) (Rule, error) {
	rule, err := s.rule(product, now)
	if err != nil {
		return Rule{}, err
	}
	if !slices.Contains(actor.Roles, RoleAdmin) && !(slices.Contains(actor.Roles, RoleRedeemer) && slices.Contains(rule.Redeemers, actor.ID)) {
		return Rule{}, Errorf(ReasonNotRedeemer, "%s is not a redeemer of %s", actor.ID, product)
	}
	return rule, nil
}

// wellFormedOTP reports whether code is exactly six ASCII digits.
func wellFormedOTP(code string) bool {
	if len(code) != 6 {
		return false
	}
	for i := range len(code) {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

func (s *Service) maxAttempts() int {
	if s.MaxOTPAttempts > 0 {
		return s.MaxOTPAttempts
	}
	return DefaultMaxOTPAttempts
}

// ParseCustomerID returns the canonical form of a customer id
// (CanonicalCustomerID), or ErrInvalidRequest when it is malformed. Every
// method that takes a customer id calls it first.
func ParseCustomerID(id string) (string, error) {
	if !ValidCustomerID(id) {
		return "", Errorf(ReasonInvalidRequest, "customer_id %q must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$ (case does not matter)", id)
	}
	return CanonicalCustomerID(id), nil
}

// fingerprint hashes its parts unambiguously (length-prefixed).
func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// explain words the violations of a refusal in plain language, using the
// policy's product titles. Other errors pass through.
func (s *Service) explain(err error, rule Rule) error {
	e, ok := err.(*Error)
	if !ok || len(e.Violations) == 0 {
		return err
	}
	e.PolicyVersion = rule.Version
	s.word(e.Violations)
	if e.Detail == "" {
		e.Detail = e.Violations[0].Detail
	}
	return e
}

// word fills in each violation's plain-words Detail.
func (s *Service) word(vs []Violation) {
	for i := range vs {
		if vs[i].Detail == "" {
			vs[i].Detail = s.sentence(vs[i])
		}
	}
}

// DateLayout and TimeLayout format times in refusal sentences (UTC).
const (
	DateLayout = "2 Jan 2006"
	TimeLayout = "15:04 MST"
)

func (s *Service) sentence(v Violation) string {
	title := s.Policy.TitleOf(v.Product)
	switch v.Reason {
	case ReasonAlreadyHoldsProduct:
		return fmt.Sprintf("Customer already holds a %s since %s.", title, v.Since.UTC().Format(DateLayout))
	case ReasonConflictingProduct:
		return fmt.Sprintf("Customer already holds a %s since %s, which excludes this product.", title, v.Since.UTC().Format(DateLayout))
	case ReasonHoldExists:
		return fmt.Sprintf("Another check for a %s is in progress until %s, placed by %s.", title, v.Until.UTC().Format(TimeLayout), v.By)
	case ReasonCustomerBlocked:
		if v.Until.IsZero() {
			return fmt.Sprintf("Customer is blocked since %s: %s.", v.Since.UTC().Format(DateLayout), v.Note)
		}
		return fmt.Sprintf("Customer is blocked until %s: %s.", v.Until.UTC().Format(DateLayout+" "+TimeLayout), v.Note)
	case ReasonRatingTooLow:
		return fmt.Sprintf("Customer's credit rating is below what a %s requires.", title)
	case ReasonCaseOpen:
		return s.caseSentence(v)
	case ReasonFamilyLimit:
		return familySentence(v, s.Policy.TitleOf)
	case ReasonCoolingOff:
		return coolingOffSentence(v, s.Policy.TitleOf)
	}
	return string(v.Reason)
}

// caseSentence words a case_open violation: which products the case is
// about, since when, and what to do; then the case's own words.
func (s *Service) caseSentence(v Violation) string {
	titles := make([]string, len(v.Products))
	for i, p := range v.Products {
		titles[i] = s.Policy.TitleOf(p)
	}
	msg := fmt.Sprintf("Customer has an open case since %s about their %s: resolve the case first.",
		v.Since.UTC().Format(DateLayout), joinAnd(titles))
	if v.Note != "" {
		msg += " " + v.Note
	}
	return msg
}
