package redisstore

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
)

// Defaults of Options.
const (
	DefaultAuditCap  = 200
	DefaultRetention = 24 * time.Hour
)

// TOTP parameters the redeem script verifies with; they match package
// tokens (RFC 6238: 30 s period, one period of skew, 6 digits).
const (
	otpPeriodSeconds = 30
	otpSkew          = 1
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	AuditCap  int           // events kept per customer; default 200
	Retention time.Duration // how long ended checks stay readable; default 24h
	// Observe, when set, is called after every script with its name, its
	// duration and its error (nil, or the transport or server error).
	Observe func(script string, d time.Duration, err error)
	// OnExpiry, when set, is called once for every hold whose expiry a
	// script recorded (Redis drops holds by TTL; the scripts settle the
	// check lazily, on the customer's next operation).
	OnExpiry func()
	// WaitReplicas, when positive, makes a redemption succeed only once that
	// many replicas acknowledged its grant (Redis WAIT, sent in the same
	// round trip as the script); fewer within WaitTimeout gives
	// validation.ErrNotDurable while the grant stays applied, so retrying
	// the redemption replays it. Zero: answer as soon as the master has it.
	WaitReplicas int
	// WaitTimeout bounds each WAIT; default DefaultWaitTimeout (100ms).
	WaitTimeout time.Duration
}

// Store is a validation.Store on Redis (single node, Sentinel or Cluster).
type Store struct {
	rdb  redis.UniversalClient
	opts Options
}

var _ validation.Store = (*Store)(nil)

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.AuditCap <= 0 {
		opts.AuditCap = DefaultAuditCap
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	return &Store{rdb: rdb, opts: opts}
}

// Load sends every script to the server (SCRIPT LOAD; on a cluster, to every
// master) so that each later call is a single EVALSHA.
func (s *Store) Load(ctx context.Context) error {
	for name, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load script %s: %w", name, err)
		}
	}
	return nil
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

func customerKeys(customer string) []string {
	p := "arb:{" + customer + "}:"
	return []string{p + "meta", p + "hold", p + "grants", p + "checks", p + "log", p + "audit", p + "block", p + "rating", p + "tries"}
}

func idemKey(customer, key string) string { return "arb:{" + customer + "}:idem:" + key }

// run executes one script on one customer's keys: ARGV starts with now, the
// audit cap and the retention, then args.
func (s *Store) run(ctx context.Context, name string, customer string, now time.Time, extraKeys []string, args ...any) ([]any, error) {
	keys := append(customerKeys(customer), extraKeys...)
	argv := append([]any{now.UnixMilli(), s.opts.AuditCap, s.opts.Retention.Milliseconds()}, args...)
	start := time.Now()
	res, err := s.eval(ctx, scripts[name], keys, argv).Slice()
	if s.opts.Observe != nil {
		s.opts.Observe(name, time.Since(start), err)
	}
	if err != nil {
		return nil, markUnknown(unavailable(name, err), err)
	}
	return s.unwrap(name, res)
}

// markUnknown adds validation.ErrOutcomeUnknown to an unavailable error
// whose script may have run: cause is ambiguous in the sense of onceCmd
// (sent, and no reply), or the context ended while waiting for one.
func markUnknown(err, cause error) error {
	var ve *validation.Error
	if !errors.As(err, &ve) || ve.Reason != validation.ReasonUnavailable {
		return err
	}
	if !ambiguous(cause) {
		return err
	}
	ve.Err = errors.Join(validation.ErrOutcomeUnknown, ve.Err)
	return err
}

// eval runs a script as redis.Script.Run does (EVALSHA, then EVAL when the
// server lacks it), except that the command may never be resent. A cluster
// client resends a command after a transport error (EOF, reset); a script
// that had run would then run twice, and a check would report its own hold
// as hold_exists. So a lost reply surfaces as unavailable (503), and the
// caller retries with its Idempotency-Key (checks) or simply (redemptions,
// which replay). Redirects (MOVED, ASK), READONLY and TRYAGAIN still make
// the client try elsewhere: those mean the script did not run.
func (s *Store) eval(ctx context.Context, sc *luaScript, keys []string, argv []any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, evalArgs("evalsha", sc.Hash(), keys, argv)...)
	_ = s.rdb.Process(ctx, onceCmd{cmd})
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = redis.NewCmd(ctx, evalArgs("eval", sc.src, keys, argv)...)
		_ = s.rdb.Process(ctx, onceCmd{cmd})
	}
	return cmd
}

// onceCmd is a script command go-redis may resend only when its error
// proves the script did not run. go-redis asks NoRetry after setting the
// command's error.
type onceCmd struct{ *redis.Cmd }

// NoRetry forbids a resend after an ambiguous failure: a transport error
// once the command may have been written. An error reply (TRYAGAIN,
// CLUSTERDOWN, LOADING, ...), a refused dial and a pool timeout all mean
// the script never ran, so go-redis may still try again.
func (c onceCmd) NoRetry() bool { return ambiguous(c.Err()) }

// ambiguous reports whether err, the failure of a sent script, leaves it
// unknown whether the script ran.
func ambiguous(err error) bool {
	var reply redis.Error
	var op *net.OpError
	switch {
	case err == nil, errors.As(err, &reply), errors.Is(err, redis.ErrPoolTimeout):
		return false
	case errors.As(err, &op) && op.Op == "dial":
		return false
	}
	return true
}

func evalArgs(verb, script string, keys []string, argv []any) []any {
	args := make([]any, 0, 3+len(keys)+len(argv))
	args = append(args, verb, script, len(keys))
	for _, k := range keys {
		args = append(args, k)
	}
	return append(args, argv...)
}

// unwrap takes a script's reply apart: {expired, reply} (see script), and
// reports a recorded expiry to Options.OnExpiry.
func (s *Store) unwrap(name string, res []any) ([]any, error) {
	if len(res) != 2 {
		return nil, fmt.Errorf("redis %s: malformed reply %v", name, res)
	}
	if flag, _ := res[0].(int64); flag == 1 && s.opts.OnExpiry != nil {
		s.opts.OnExpiry()
	}
	reply, _ := res[1].([]any) // an empty Lua table arrives as an empty array
	return reply, nil
}

// unavailable classifies a failed call: OOM (Redis at maxmemory refused
// the script's first write, so nothing was written) is store_full; another
// server-side error reply (a bug in a script) is internal, save the
// transient ones; anything else (network, timeout, pool exhaustion,
// cancelled context) means Redis is unavailable.
func unavailable(name string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && isOOM(rerr.Error()) {
		return &validation.Error{Reason: validation.ReasonStoreFull, Err: fmt.Errorf("redis %s: %w", name, err),
			Detail: "the store is full (Redis reached its maxmemory) and refuses new data; nothing was changed; retry later"}
	}
	if errors.As(err, &rerr) && !isTransient(rerr.Error()) {
		return fmt.Errorf("redis %s: %w", name, err)
	}
	return &validation.Error{Reason: validation.ReasonUnavailable, Detail: "the store is unavailable; retry later", Err: fmt.Errorf("redis %s: %w", name, err)}
}

// isOOM matches Redis's "OOM command not allowed when used memory >
// 'maxmemory'", raised by a script's redis.call (Redis 7 keeps the code;
// Redis 6 wraps it in ERR Error running script).
func isOOM(msg string) bool {
	return strings.HasPrefix(msg, "OOM ") || strings.Contains(msg, "-OOM ")
}

func isTransient(msg string) bool {
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// Hold implements validation.Store.
func (s *Store) Hold(ctx context.Context, req validation.HoldRequest) (validation.Check, bool, error) {
	var extra []string
	if req.IdempotencyKey != "" {
		extra = []string{idemKey(req.CustomerID, req.IdempotencyKey)}
	}
	res, err := s.run(ctx, "check", req.CustomerID, req.Now, extra,
		req.Rule.Product, req.Rule.Max, strings.Join(req.Rule.Conflicts, ","),
		req.CheckID, hex.EncodeToString(req.Secret), req.Rule.HoldTTL.Milliseconds(),
		req.Actor, req.AgentID, req.RequestHash, req.IdempotencyTTL.Milliseconds(),
		req.Rule.MinRating, scoreArg(req.Rating), req.Rating.CacheTTL.Milliseconds())
	if err != nil {
		return validation.Check{}, false, err
	}
	switch str(res, 0) {
	case "need_rating":
		return validation.Check{}, false, validation.ErrRatingNeeded
	case "held":
		c, err := decodeCheck(req.CustomerID, str(res, 1), "")
		c.Secret = req.Secret
		return c, false, err
	case "replay":
		c, err := decodeCheck(req.CustomerID, str(res, 1), str(res, 2))
		return c, true, err
	case "refused":
		return validation.Check{}, false, refusal(str(res, 1))
	}
	return validation.Check{}, false, scriptError("check", res)
}

// Redeem implements validation.Store.
func (s *Store) Redeem(ctx context.Context, req validation.RedeemRequest) (validation.Grant, bool, error) {
	mode := "token"
	if req.CheckID == "" {
		mode = "otp"
	}
	run := s.run
	if s.opts.WaitReplicas > 0 {
		run = s.runDurable // see wait.go
	}
	res, err := run(ctx, "redeem", req.CustomerID, req.Now, nil,
		mode, req.Rule.Product, req.CheckID, req.Code, req.Actor,
		req.Rule.Max, strings.Join(req.Rule.Conflicts, ","), req.MaxAttempts,
		otpPeriodSeconds, otpSkew, cmp.Or(req.OTPFailures, validation.DefaultOTPFailures),
		cmp.Or(req.OTPWindow, validation.DefaultOTPWindow).Milliseconds())
	if err != nil {
		return validation.Grant{}, false, err
	}
	switch str(res, 0) {
	case "granted", "replay":
		g, err := decodeGrant(req.CustomerID, str(res, 1))
		return g, str(res, 0) == "replay", err
	case "refused":
		return validation.Grant{}, false, refusal(str(res, 1))
	}
	return validation.Grant{}, false, scriptError("redeem", res)
}

// scoreArg encodes a RatingInput for the scripts' evaluate: an empty
// string reads the cached score, a number is a fresh score, "skip" passes
// the rule unevaluated.
func scoreArg(r validation.RatingInput) string {
	switch {
	case r.Skip:
		return "skip"
	case r.Score != nil:
		return strconv.Itoa(*r.Score)
	}
	return ""
}

// Eligibility implements validation.Store.
func (s *Store) Eligibility(ctx context.Context, req validation.EligibilityRequest) (validation.EligibilityResult, error) {
	res, err := s.run(ctx, "eligibility", req.CustomerID, req.Now, nil,
		req.Rule.Product, req.Rule.Max, strings.Join(req.Rule.Conflicts, ","),
		req.Rule.MinRating, scoreArg(req.Rating), req.Rating.CacheTTL.Milliseconds())
	if err != nil {
		return validation.EligibilityResult{}, err
	}
	switch str(res, 0) {
	case "need_rating":
		return validation.EligibilityResult{}, validation.ErrRatingNeeded
	case "ok":
		vs, err := decodeViolations(str(res, 1))
		return validation.EligibilityResult{Violations: vs, Rating: validation.RatingState(str(res, 2))}, err
	}
	return validation.EligibilityResult{}, scriptError("eligibility", res)
}

// Block implements validation.Store.
func (s *Store) Block(ctx context.Context, req validation.BlockRequest) (*validation.Check, error) {
	var until int64
	if !req.Until.IsZero() {
		until = req.Until.UnixMilli()
	}
	res, err := s.run(ctx, "block", req.CustomerID, req.Now, nil, req.Reason, until, req.Actor)
	if err != nil {
		return nil, err
	}
	if str(res, 0) != "ok" {
		return nil, scriptError("block", res)
	}
	if raw := str(res, 1); raw != "" {
		c, err := decodeCheck(req.CustomerID, raw, "")
		if err != nil {
			return nil, err
		}
		return &c, nil
	}
	return nil, nil
}

// Unblock implements validation.Store.
func (s *Store) Unblock(ctx context.Context, customerID, actor string, now time.Time) error {
	res, err := s.run(ctx, "unblock", customerID, now, nil, actor)
	if err != nil {
		return err
	}
	if str(res, 0) == "ok" {
		return nil
	}
	return validation.Errorf(validation.ReasonNotFound, "customer %s is not blocked", customerID)
}

// Check implements validation.Store.
func (s *Store) Check(ctx context.Context, customerID, checkID string, now time.Time) (validation.Check, error) {
	res, err := s.run(ctx, "get", customerID, now, nil, checkID)
	if err != nil {
		return validation.Check{}, err
	}
	if len(res) == 0 {
		return validation.Check{}, validation.Errorf(validation.ReasonCheckNotFound, "no check %q (checks are kept %s after they end)", checkID, s.opts.Retention)
	}
	return decodeCheck(customerID, str(res, 0), str(res, 1))
}

// Cancel implements validation.Store.
func (s *Store) Cancel(ctx context.Context, req validation.CancelRequest) (validation.Check, error) {
	allowed := "*"
	if req.Products != nil {
		allowed = strings.Join(req.Products, ",")
	}
	res, err := s.run(ctx, "cancel", req.CustomerID, req.Now, nil, req.CheckID, req.Actor, allowed, req.Agent, req.Placer)
	if err != nil {
		return validation.Check{}, err
	}
	if str(res, 0) == "ok" {
		return decodeCheck(req.CustomerID, str(res, 1), "")
	}
	return validation.Check{}, scriptError("cancel", res)
}

// Customer implements validation.Store.
func (s *Store) Customer(ctx context.Context, customerID string, now time.Time) (validation.Customer, error) {
	res, err := s.run(ctx, "customer", customerID, now, nil)
	if err != nil {
		return validation.Customer{}, err
	}
	cust := validation.Customer{ID: customerID, Grants: []validation.Grant{}}
	if raw := str(res, 0); raw != "" {
		c, err := decodeCheck(customerID, raw, "")
		if err != nil {
			return cust, err
		}
		cust.Hold = &c
	}
	if raw := str(res, 1); raw != "" {
		var v violationJSON
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return cust, fmt.Errorf("decode block: %w", err)
		}
		cust.Block = &validation.Block{Reason: v.Note, Since: ms(v.Since), Until: ms(v.Until), By: v.By}
	}
	for i := 2; i < len(res); i++ {
		g, err := decodeGrant(customerID, str(res, i))
		if err != nil {
			return cust, err
		}
		cust.Grants = append(cust.Grants, g)
	}
	sortGrants(cust.Grants)
	return cust, nil
}

// Release implements validation.Store.
func (s *Store) Release(ctx context.Context, req validation.ReleaseRequest) (validation.Grant, error) {
	res, err := s.run(ctx, "release", req.CustomerID, req.Now, nil, req.Product, req.Actor, req.CheckID)
	if err != nil {
		return validation.Grant{}, err
	}
	if str(res, 0) == "ok" {
		return decodeGrant(req.CustomerID, str(res, 1))
	}
	return validation.Grant{}, validation.Errorf(validation.ReasonGrantNotFound, "customer %s holds no %s", req.CustomerID, req.Product)
}

// Abandon implements validation.Store.
func (s *Store) Abandon(ctx context.Context, req validation.AbandonRequest) (validation.AbandonOutcome, error) {
	res, err := s.run(ctx, "abandon", req.CustomerID, req.Now, nil, req.CheckID, req.Actor)
	if err != nil {
		return "", err
	}
	if str(res, 0) != "ok" {
		return "", scriptError("abandon", res)
	}
	return validation.AbandonOutcome(str(res, 1)), nil
}

// Import implements validation.Store.
func (s *Store) Import(ctx context.Context, req validation.ImportRequest) (validation.Grant, error) {
	res, err := s.run(ctx, "import", req.CustomerID, req.Now, nil,
		req.Rule.Product, req.Rule.Max, strings.Join(req.Rule.Conflicts, ","),
		req.CheckID, req.Actor, req.GrantedAt.UnixMilli())
	if err != nil {
		return validation.Grant{}, err
	}
	switch str(res, 0) {
	case "ok":
		return decodeGrant(req.CustomerID, str(res, 1))
	case "refused":
		return validation.Grant{}, refusal(str(res, 1))
	}
	return validation.Grant{}, scriptError("import", res)
}

// Audit implements validation.Store. The script returns both lists whole
// (each is capped, 200 and 100 events); they are merged by time, each
// keeping its own order, then filtered and limited here.
func (s *Store) Audit(ctx context.Context, customerID string, limit int, now time.Time, types ...validation.EventType) ([]validation.Event, error) {
	res, err := s.run(ctx, "audit", customerID, now, nil)
	if err != nil {
		return nil, err
	}
	var lists [2][]validation.Event
	for i := range lists {
		var raw []any
		if i < len(res) {
			raw, _ = res[i].([]any)
		}
		for j := range raw {
			ev, err := decodeEvent(str(raw, j))
			if err != nil {
				return nil, err
			}
			if len(types) == 0 || slices.Contains(types, ev.Type) {
				lists[i] = append(lists[i], ev)
			}
		}
	}
	events := make([]validation.Event, 0, min(limit, len(lists[0])+len(lists[1])))
	state, tries := lists[0], lists[1]
	for len(events) < limit && (len(state) > 0 || len(tries) > 0) {
		if len(tries) == 0 || len(state) > 0 && !state[0].At.Before(tries[0].At) {
			events, state = append(events, state[0]), state[1:]
		} else {
			events, tries = append(events, tries[0]), tries[1:]
		}
	}
	return events, nil
}

func decodeEvent(raw string) (validation.Event, error) {
	var e eventJSON
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return validation.Event{}, fmt.Errorf("decode audit event: %w", err)
	}
	ev := validation.Event{
		At: ms(e.At), Type: validation.EventType(e.Type), Product: e.Product, CheckID: e.CheckID,
		Actor: e.Actor, Agent: e.Agent, Reason: validation.Reason(e.Reason), Note: e.Note, Fence: int64(e.Fence),
	}
	for _, r := range e.Reasons {
		ev.Reasons = append(ev.Reasons, validation.Reason(r))
	}
	return ev, nil
}

// The JSON shapes the scripts write. Numbers are float64 because Lua's
// cjson writes every number as one; milliseconds fit exactly.
type checkJSON struct {
	ID         string  `json:"id"`
	Product    string  `json:"product"`
	Status     string  `json:"status"`
	Fence      float64 `json:"fence"`
	Created    float64 `json:"created"`
	Expires    float64 `json:"expires"`
	By         string  `json:"by"`
	Agent      string  `json:"agent"`
	RedeemedBy string  `json:"redeemed_by"`
	Granted    float64 `json:"granted"`
	Ended      float64 `json:"ended"`
	EndedBy    string  `json:"ended_by"`
	EndReason  string  `json:"end_reason"`
}

type grantJSON struct {
	CheckID string  `json:"check_id"`
	Product string  `json:"product"`
	Fence   float64 `json:"fence"`
	Granted float64 `json:"granted"`
	By      string  `json:"by"`
}

type eventJSON struct {
	At      float64  `json:"at"`
	Type    string   `json:"type"`
	Product string   `json:"product"`
	CheckID string   `json:"check_id"`
	Actor   string   `json:"actor"`
	Agent   string   `json:"agent"`
	Reason  string   `json:"reason"`
	Reasons []string `json:"reasons"`
	Note    string   `json:"note"`
	Fence   float64  `json:"fence"`
}

type violationJSON struct {
	Reason   string   `json:"reason"`
	Product  string   `json:"product"`
	CheckID  string   `json:"check_id"`
	Since    float64  `json:"since"`
	Until    float64  `json:"until"`
	By       string   `json:"by"`
	Note     string   `json:"note"`
	Required *float64 `json:"required"`
	Score    *float64 `json:"score"`
}

func decodeCheck(customer, raw, secretHex string) (validation.Check, error) {
	var j checkJSON
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		return validation.Check{}, fmt.Errorf("decode check: %w", err)
	}
	c := validation.Check{
		ID: j.ID, CustomerID: customer, Product: j.Product, Status: validation.CheckStatus(j.Status),
		Fence: int64(j.Fence), CreatedAt: ms(j.Created), ExpiresAt: ms(j.Expires),
		PlacedBy: j.By, AgentID: j.Agent, RedeemedBy: j.RedeemedBy, GrantedAt: ms(j.Granted),
		EndedAt: ms(j.Ended), EndedBy: j.EndedBy, EndReason: j.EndReason,
	}
	if secretHex != "" {
		secret, err := hex.DecodeString(secretHex)
		if err != nil {
			return c, fmt.Errorf("decode hold secret: %w", err)
		}
		c.Secret = secret
	}
	return c, nil
}

func decodeGrant(customer, raw string) (validation.Grant, error) {
	var j grantJSON
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		return validation.Grant{}, fmt.Errorf("decode grant: %w", err)
	}
	return validation.Grant{
		CustomerID: customer, Product: j.Product, CheckID: j.CheckID,
		Fence: int64(j.Fence), GrantedAt: ms(j.Granted), RedeemedBy: j.By,
	}, nil
}

// decodeViolations turns the scripts' violations into the domain's.
func decodeViolations(raw string) ([]validation.Violation, error) {
	var vs []violationJSON
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		return nil, fmt.Errorf("decode violations %q: %w", raw, err)
	}
	out := make([]validation.Violation, 0, len(vs))
	for _, v := range vs {
		out = append(out, validation.Violation{
			Reason: validation.Reason(v.Reason), Product: v.Product, CheckID: v.CheckID,
			Since: ms(v.Since), Until: ms(v.Until), By: v.By, Note: v.Note,
			RequiredRating: intPtr(v.Required), Rating: intPtr(v.Score),
		})
	}
	return out, nil
}

func intPtr(f *float64) *int {
	if f == nil {
		return nil
	}
	n := int(*f)
	return &n
}

// refusal turns the script's violations into the domain's refusal error.
func refusal(raw string) error {
	vs, err := decodeViolations(raw)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("refusal without violations")
	}
	e := &validation.Error{Reason: vs[0].Reason, Violations: vs}
	for _, v := range vs {
		switch v.Reason {
		case validation.ReasonHoldExists:
			e.HeldProduct, e.HeldUntil, e.HeldBy = v.Product, v.Until, v.By
		case validation.ReasonConflictingProduct:
			e.HeldProducts = append(e.HeldProducts, v.Product)
		}
	}
	return e
}

// scriptError turns a script's {'error', reason, detail[, attempts]} reply
// into the domain's error.
func scriptError(name string, res []any) error {
	if str(res, 0) != "error" {
		return fmt.Errorf("redis %s: unexpected reply %v", name, res)
	}
	reason, detail := validation.Reason(str(res, 1)), str(res, 2)
	e := &validation.Error{Reason: reason}
	switch reason {
	case validation.ReasonHoldExpired:
		e.Detail = "the hold is no longer live (" + detail + "); request a new check"
	case validation.ReasonAlreadyRedeemed:
		e.Detail = "the check was already redeemed by " + detail
	case validation.ReasonOTPLocked:
		e.Detail = "too many wrong codes: the hold is burnt; request a new check"
	case validation.ReasonOTPRateLimited:
		ms, _ := strconv.ParseInt(detail, 10, 64)
		e.RetryAfter = time.Duration(ms) * time.Millisecond
		e.Detail = fmt.Sprintf("too many wrong codes for this customer; one-time codes are refused for %s (approval tokens still work)", e.RetryAfter.Round(time.Second))
	case validation.ReasonGrantReleased:
		e.Detail = "check " + detail + " was redeemed, but its grant has been released since; a new application needs a new check"
	case validation.ReasonOTPInvalid:
		if detail == "replay" {
			e.Detail = "the check was redeemed, and not with this code"
			break
		}
		left := 0
		if len(res) > 3 {
			if n, ok := res[3].(int64); ok {
				left = int(n)
			}
		}
		e.AttemptsLeft = &left
		e.Detail = fmt.Sprintf("wrong code; %d attempts left", left)
	case validation.ReasonTokenInvalid:
		e.Detail = "the token's product does not match its check"
	case validation.ReasonCheckNotHeld:
		e.Detail = "the check is " + detail + ", not held"
	case validation.ReasonCheckNotFound:
		e.Detail = "no such check"
	case validation.ReasonForbidden:
		e.Detail = "this client may cancel only the checks it placed and those of the products it redeems, not this check for " + detail
	case "check_abandoned":
		// Only a check script Redis ran after arbiter gave it up gets this,
		// and nobody waits for its answer.
		return &validation.Error{Reason: validation.ReasonUnavailable, Detail: "the check was given up as lost; retry"}
	case validation.ReasonIdempotencyKeyReused:
		e.Detail = "this Idempotency-Key was used with another request body"
	default:
		return fmt.Errorf("redis %s: unexpected error reply %v", name, res)
	}
	return e
}

func str(res []any, i int) string {
	if i >= len(res) {
		return ""
	}
	switch v := res[i].(type) {
	case string:
		return v
	case int64:
		return fmt.Sprint(v)
	}
	return ""
}

func ms(v float64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(math.Round(v))).UTC()
}

func sortGrants(gs []validation.Grant) {
	slices.SortFunc(gs, func(a, b validation.Grant) int {
		if c := a.GrantedAt.Compare(b.GrantedAt); c != 0 {
			return c
		}
		return strings.Compare(a.CheckID, b.CheckID)
	})
}
