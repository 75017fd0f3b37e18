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
	DefaultAuditCap       = 200
	DefaultRetention      = 24 * time.Hour
	DefaultAuditRetention = 30 * 24 * time.Hour
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	AuditCap  int           // events kept per customer; default 200
	Retention time.Duration // how long ended checks stay readable; default 24h
	// AuditRetention is how long a customer's audit trail and meta outlive
	// its newest event and hold; default 30 days. After it, a customer
	// without grants or a block has no key left.
	AuditRetention time.Duration
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
	// OutboxCap, when positive, turns the outbox on: every decision's
	// events are also appended to the outbox of the customer's slot (read
	// by validation.Exporter through the Outbox methods), and live holds
	// are kept in the slot's expiry index for Sweep. A decision finding its
	// slot's outbox holding OutboxCap records is refused with
	// validation.ErrOutboxFull, nothing written. Zero: no outbox (nothing
	// would drain it).
	OutboxCap int
	// AutoPipeline, when set, sends the scripts' calls through the client's
	// autopipeliner, so that concurrent requests' calls share one write and
	// one read (pipeline.go says what changes and what does not); each
	// request still sends one command, never resent once it may have run.
	// Durable redemptions and confirmed reads (WaitReplicas) are not
	// batched. Default off.
	AutoPipeline bool
	// CompactGrants makes a redemption write the ledger's short grant
	// (g1) and the check's record beside it, and arbiter migrate convert
	// whole grants to g1: a granted customer's ledger then stays a
	// listpack. Off (the default in this release), a redemption writes
	// the whole check as the previous release did, which that release
	// can read. The scripts read both encodings either way. Turn it on
	// only once no instance of the previous release serves (operations.md).
	CompactGrants bool
}

// triesCap is how many attempts that changed nothing are kept per
// customer (TRIES_CAP in the prelude).
const triesCap = 100

// Store is a validation.Store on Redis (single node, Sentinel or Cluster).
type Store struct {
	rdb  redis.UniversalClient
	ap   *redis.AutoPipeliner // Options.AutoPipeline's, or nil (pipeline.go)
	opts Options
	fns  functionState // whether the hot scripts run as functions (library.go)
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
	if opts.AuditRetention <= 0 {
		opts.AuditRetention = DefaultAuditRetention
	}
	s := &Store{rdb: rdb, opts: opts}
	if opts.AutoPipeline {
		s.ap = newAutoPipeliner(rdb)
	}
	return s
}

// Load sends every script to the server (SCRIPT LOAD; on a cluster, to every
// master) so that each later call is a single EVALSHA.
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load script %s: %w", sc.name, err)
		}
	}
	return s.loadFunctions(ctx)
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// customerKeys builds the keys of one customer, in the scripts' KEYS
// order (customerKeyNames): arb:{<customer>}:<name>.
func customerKeys(customer string) []string {
	p := "arb:{" + customer + "}:"
	keys := make([]string, len(customerKeyNames), len(customerKeyNames)+1)
	for i, n := range customerKeyNames {
		keys[i] = p + n
	}
	return keys
}

func idemKey(customer, key string) string { return "arb:{" + customer + "}:idem:" + key }

// common is the start of every script's ARGV (commonArgs).
func (s *Store) common(now time.Time) commonArgs {
	return commonArgs{Now: now.UnixMilli(), AuditCap: s.opts.AuditCap, Retention: s.opts.Retention.Milliseconds(),
		AuditRetention: s.opts.AuditRetention.Milliseconds(), OutboxCap: s.opts.OutboxCap, CompactGrants: s.opts.CompactGrants}
}

// run executes one script on one customer's keys with its arguments (a
// contract struct, see contract.go) and decodes its reply into *reply.
func (s *Store) run(ctx context.Context, sc *luaScript, customer string, now time.Time, extraKeys []string, args, reply any) error {
	keys := scriptKeys(customer, extraKeys)
	argv := argv(argv(nil, s.common(now)), args)
	start := time.Now()
	res, err := s.eval(ctx, sc, keys, argv).Slice()
	if s.opts.Observe != nil {
		s.opts.Observe(sc.name, time.Since(start), err)
	}
	if err != nil {
		return markUnknown(scriptFailure(sc.name, err), err)
	}
	if res, err = s.unwrap(sc.name, res); err != nil {
		return err
	}
	return decodeReply(reply, res)
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

// eval runs a script: as its function (FCALL) when it is in the function
// library and the server has it (library.go), otherwise as redis.Script.Run
// does (EVALSHA, then EVAL when the server lacks it); in every case the
// command may never be resent. A cluster
// client resends a command after a transport error (EOF, reset); a script
// that had run would then run twice, and a check would report its own hold
// as hold_exists. So a lost reply surfaces as unavailable (503), and the
// caller retries with its Idempotency-Key (checks) or simply (redemptions,
// which replay). Redirects (MOVED, ASK), READONLY and TRYAGAIN still make
// the client try elsewhere: those mean the script did not run.
func (s *Store) eval(ctx context.Context, sc *luaScript, keys []string, argv []any) *redis.Cmd {
	if cmd := s.fcall(ctx, sc, keys, argv); cmd != nil {
		return cmd
	}
	return evalOnce(ctx, s.sender(), sc, keys, argv)
}

// evalOnce is eval for any client, without functions: EVALSHA, then EVAL
// when the server lacks the script.
func evalOnce(ctx context.Context, rdb sender, sc *luaScript, keys []string, argv []any) *redis.Cmd {
	cmd := call(ctx, rdb, "evalsha", sc.Hash(), keys, argv)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = call(ctx, rdb, "eval", sc.src, keys, argv)
	}
	return cmd
}

// call sends "verb name numkeys keys... argv..." (EVALSHA, EVAL or FCALL)
// as a command that is never resent once it may have run (onceCmd). A
// cluster client follows MOVED and ASK and waits out TRYAGAIN itself, but
// only MaxRedirects times (3 unless the client was built otherwise), and a
// slot that is being migrated answers TRYAGAIN to a script whose keys are
// partly there for as long as the slot's migration lasts. So when one of
// these replies survives the client's own budget, call backs off and
// sends again, up to maxRedirects times: the reply proves the script did
// not run, and how well a check rides out a reshard does not depend on
// how the client was configured (TestScriptsOutlastTheClientsRedirects).
func call(ctx context.Context, rdb sender, verb, name string, keys []string, argv []any) *redis.Cmd {
	_, batched := rdb.(*redis.AutoPipeliner)
	for attempt := 0; ; attempt++ {
		cmd := redis.NewCmd(ctx, evalArgs(verb, name, keys, argv)...)
		if err := ctx.Err(); batched && err != nil {
			cmd.SetErr(fmt.Errorf("%w: %w", errNotSent, err)) // a batch would run it anyway
			return cmd
		}
		_ = rdb.Process(ctx, onceCmd{cmd, batched})
		err := cmd.Err()
		if ctxErr := ctx.Err(); batched && err == nil && ctxErr != nil {
			// The batch ran the script after the caller gave up: report
			// it as a call sent alone would, a reply lost to the deadline
			// (ambiguous), so a check's hold goes to the abandoner
			// instead of staying with nobody to redeem it.
			cmd.SetErr(ctxErr)
			return cmd
		}
		if err == nil || !notRun(err) || attempt == maxRedirects || backoff(ctx, attempt) != nil {
			return cmd
		}
	}
}

// notRun reports whether err is a reply that sends a command elsewhere or
// asks for it later, and proves the script had no effect: MOVED, ASK,
// TRYAGAIN and CLUSTERDOWN are given before a command runs; so are LOADING
// (a server loading its dataset runs no script), and, for a function,
// READONLY and MASTERDOWN (the library registers its functions without
// the no-writes and allow-stale flags, so a read-only or stale replica
// refuses the FCALL itself). A script sent as EVAL/EVALSHA on a replica
// may start and meet READONLY or MASTERDOWN at its first write, but a
// replica accepts no write from a client, so it had no effect either.
// Batched calls need call to retry these: go-redis never resends them
// (onceCmd), where it retries them for a call sent alone.
func notRun(err error) bool {
	return isMoved(err) || isAsk(err) || redis.IsTryAgainError(err) || redis.IsClusterDownError(err) ||
		redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err)
}

// onceCmd is a script command go-redis may resend only when its error
// proves the script did not run. go-redis asks NoRetry after setting the
// command's error. A batched command (autopipelined, pipeline.go) is never
// resent by go-redis: it decides a batch's resend for all its commands,
// sometimes before their errors are set.
type onceCmd struct {
	*redis.Cmd
	batched bool
}

// NoRetry forbids a resend after an ambiguous failure: a transport error
// once the command may have been written. An error reply (TRYAGAIN,
// CLUSTERDOWN, LOADING, ...), a refused dial and a pool timeout all mean
// the script never ran, so go-redis may still try again, unless the
// command is batched.
func (c onceCmd) NoRetry() bool { return c.batched || ambiguous(c.Err()) }

// ambiguous reports whether err, the failure of a sent script, leaves it
// unknown whether the script ran.
func ambiguous(err error) bool {
	var reply redis.Error
	var op *net.OpError
	switch {
	case err == nil, errors.As(err, &reply), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, errNotSent):
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
		return validation.StoreFull(fmt.Errorf("redis %s: %w", name, err))
	}
	if errors.As(err, &rerr) && !isTransient(rerr.Error()) {
		return fmt.Errorf("redis %s: %w", name, err)
	}
	return validation.StoreUnavailable(fmt.Errorf("redis %s: %w", name, err))
}

// scriptFailure is unavailable for a customer script: every customer key
// has one type, so WRONGTYPE there is a retired layout (a v1 hold is a
// hash), named as such.
func scriptFailure(name string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE") {
		return fmt.Errorf("redis %s: %w: %w", name, err, errRetired)
	}
	return unavailable(name, err)
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
	var r checkReply
	err := s.run(ctx, checkScript, req.CustomerID, req.Now, extra, checkArgs{
		Product: req.Rule.Product, Rules: rulesArg(req.Rule), Version: req.Rule.Version,
		ID: req.CheckID, Secret: hex.EncodeToString(req.Secret), Token: req.TokenHash, TTL: req.Rule.HoldTTL.Milliseconds(),
		Actor: req.Actor, Agent: req.AgentID, ReqHash: req.RequestHash, IdemTTL: req.IdempotencyTTL.Milliseconds(),
		ScoreArg: scoreArg(req.Rating), RatingTTL: req.Rating.CacheTTL.Milliseconds(),
	}, &r)
	if err != nil {
		return validation.Check{}, false, err
	}
	switch r.Kind {
	case kindNeedRating:
		return validation.Check{}, false, validation.ErrRatingNeeded
	case kindHeld:
		// The script returns only what it decided; the rest is the request.
		now := time.UnixMilli(req.Now.UnixMilli()).UTC()
		return validation.Check{
			ID: req.CheckID, CustomerID: req.CustomerID, Product: req.Rule.Product, Status: validation.StatusHeld,
			Fence: r.Fence, CreatedAt: now, ExpiresAt: now.Add(time.Duration(req.Rule.HoldTTL.Milliseconds()) * time.Millisecond),
			PlacedBy: req.Actor, AgentID: req.AgentID, Secret: req.Secret, PolicyVersion: req.Rule.Version,
		}, false, nil
	case kindReplay:
		c, err := decodeCheck(req.CustomerID, r.Check)
		return c, true, err
	case kindRefused:
		return validation.Check{}, false, refusal(r.Violations, req.Rule)
	}
	return validation.Check{}, false, scriptError(checkScript.name, r.Kind, r.Reason, "", 0)
}

// Redeem implements validation.Store.
func (s *Store) Redeem(ctx context.Context, req validation.RedeemRequest) (validation.Grant, bool, error) {
	run := s.run
	if s.opts.WaitReplicas > 0 {
		run = s.runDurable // see wait.go
	}
	var r redeemReply
	var err error
	rules := rulesArg(req.Rule)
	if req.CheckID != "" {
		err = run(ctx, redeemTokenScript, req.CustomerID, req.Now, nil, redeemTokenArgs{
			Product: req.Rule.Product, ID: req.CheckID, Actor: req.Actor, Rules: rules, Version: req.Rule.Version,
			Token: req.TokenHash,
		}, &r)
	} else {
		err = run(ctx, redeemOTPScript, req.CustomerID, req.Now, nil, redeemOTPArgs{
			Product: req.Rule.Product, Code: req.Code, Actor: req.Actor, Rules: rules, Version: req.Rule.Version,
			MaxAttempts: req.MaxAttempts, Period: int(cmp.Or(req.OTPPeriod, validation.DefaultOTPPeriod) / time.Second),
			Skew:      cmp.Or(req.OTPSkew, validation.DefaultOTPSkew),
			OTPBudget: cmp.Or(req.OTPFailures, validation.DefaultOTPFailures),
			OTPWindow: cmp.Or(req.OTPWindow, validation.DefaultOTPWindow).Milliseconds(),
		}, &r)
	}
	if err != nil {
		return validation.Grant{}, false, err
	}
	switch r.Kind {
	case kindGranted, kindReplay:
		g, err := decodeGrant(req.CustomerID, r.Grant)
		return g, r.Kind == kindReplay, err
	case kindRefused:
		return validation.Grant{}, false, refusal(r.Violations, req.Rule)
	}
	return validation.Grant{}, false, scriptError("redeem", r.Kind, r.Reason, r.Detail, int(r.AttemptsLeft))
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
	var r eligibilityReply
	err := s.run(ctx, eligScript, req.CustomerID, req.Now, nil, eligibilityArgs{
		Product: req.Rule.Product, Rules: rulesArg(req.Rule),
		ScoreArg: scoreArg(req.Rating), RatingTTL: req.Rating.CacheTTL.Milliseconds(),
	}, &r)
	if err != nil {
		return validation.EligibilityResult{}, err
	}
	switch r.Kind {
	case kindNeedRating:
		return validation.EligibilityResult{}, validation.ErrRatingNeeded
	case kindOK:
		vs, err := decodeViolations(r.Violations)
		return validation.EligibilityResult{Violations: worded(vs, req.Rule), Rating: validation.RatingState(r.Rating)}, err
	}
	return validation.EligibilityResult{}, scriptError(eligScript.name, r.Kind, "", "", 0)
}

// Block implements validation.Store.
func (s *Store) Block(ctx context.Context, req validation.BlockRequest) (*validation.Check, error) {
	var until int64
	if !req.Until.IsZero() {
		until = req.Until.UnixMilli()
	}
	var r checkOpReply
	if err := s.run(ctx, blockScript, req.CustomerID, req.Now, nil, blockArgs{Reason: req.Reason, UntilMS: until, Actor: req.Actor}, &r); err != nil {
		return nil, err
	}
	if r.Kind != kindOK {
		return nil, scriptError(blockScript.name, r.Kind, r.Reason, r.Detail, 0)
	}
	if r.Check == "" {
		return nil, nil
	}
	c, err := decodeCheck(req.CustomerID, r.Check)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// Unblock implements validation.Store.
func (s *Store) Unblock(ctx context.Context, customerID, actor string, now time.Time) error {
	var r checkOpReply
	if err := s.run(ctx, unblockScript, customerID, now, nil, actorArgs{Actor: actor}, &r); err != nil {
		return err
	}
	switch {
	case r.Kind == kindOK:
		return nil
	case r.Reason == string(validation.ReasonNotFound):
		return validation.NotBlocked(customerID)
	}
	return scriptError(unblockScript.name, r.Kind, r.Reason, r.Detail, 0)
}

// Check implements validation.Store.
func (s *Store) Check(ctx context.Context, customerID, checkID string, now time.Time) (validation.Check, error) {
	var r checkOpReply
	if err := s.runConfirmed(ctx, getScript, customerID, now, idArgs{ID: checkID}, &r); err != nil {
		return validation.Check{}, err
	}
	if r.Check == "" {
		return validation.Check{}, validation.CheckGone(checkID, s.opts.Retention)
	}
	return decodeCheck(customerID, r.Check)
}

// Cancel implements validation.Store.
func (s *Store) Cancel(ctx context.Context, req validation.CancelRequest) (validation.Check, error) {
	allowed := "*"
	if req.Products != nil {
		allowed = strings.Join(req.Products, ",")
	}
	var r checkOpReply
	err := s.run(ctx, cancelScript, req.CustomerID, req.Now, nil, cancelArgs{
		ID: req.CheckID, Actor: req.Actor, Allowed: allowed, Agent: req.Agent, Placer: req.Placer,
	}, &r)
	if err != nil {
		return validation.Check{}, err
	}
	if r.Kind == kindOK {
		return decodeCheck(req.CustomerID, r.Check)
	}
	return validation.Check{}, scriptError(cancelScript.name, r.Kind, r.Reason, r.Detail, 0)
}

// Customer implements validation.Store.
func (s *Store) Customer(ctx context.Context, customerID string, now time.Time) (validation.Customer, error) {
	var r customerReply
	if err := s.runConfirmed(ctx, customerScript, customerID, now, noArgs{}, &r); err != nil {
		return validation.Customer{}, err
	}
	cust := validation.Customer{ID: customerID, Grants: []validation.Grant{}}
	if r.Hold != "" {
		c, err := decodeCheck(customerID, r.Hold)
		if err != nil {
			return cust, err
		}
		c.Secret = nil
		cust.Hold = &c
	}
	if r.Block != "" {
		var v wireViolation
		if err := json.Unmarshal([]byte(r.Block), &v); err != nil {
			return cust, fmt.Errorf("decode block: %w", err)
		}
		cust.Block = &validation.Block{Reason: v.Note, Since: ms(v.Since), Until: ms(v.Until), By: v.By}
	}
	for _, raw := range r.Grants {
		g, err := decodeGrant(customerID, raw)
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
	var r grantReply
	if err := s.runConfirmed(ctx, releaseScript, req.CustomerID, req.Now, releaseArgs{Product: req.Product, Actor: req.Actor, Want: req.CheckID,
		KeepEnded: cmp.Or(req.KeepEnded, validation.MinKeepEnded).Milliseconds()}, &r); err != nil {
		return validation.Grant{}, err
	}
	switch {
	case r.Kind == kindOK:
		return decodeGrant(req.CustomerID, r.Grant)
	case r.Reason == string(validation.ReasonGrantNotFound):
		return validation.Grant{}, validation.GrantNotFound(req.CustomerID, req.Product)
	}
	// outbox_full: a caller told grant_not_found would take the grant for
	// released.
	return validation.Grant{}, scriptError(releaseScript.name, r.Kind, r.Reason, "", 0)
}

// Abandon implements validation.Store.
func (s *Store) Abandon(ctx context.Context, req validation.AbandonRequest) (validation.AbandonOutcome, error) {
	var r checkOpReply
	if err := s.run(ctx, abandonScript, req.CustomerID, req.Now, nil, abandonArgs{ID: req.CheckID, Actor: req.Actor}, &r); err != nil {
		return "", err
	}
	if r.Kind != kindOK {
		return "", scriptError(abandonScript.name, r.Kind, r.Reason, r.Detail, 0)
	}
	return validation.AbandonOutcome(r.Detail), nil
}

// Import implements validation.Store.
func (s *Store) Import(ctx context.Context, req validation.ImportRequest) (validation.Grant, error) {
	if req.Rule.Product == "" {
		return validation.Grant{}, validation.Errorf(validation.ReasonInvalidRequest, "an import names its product")
	}
	var r grantReply
	err := s.run(ctx, importScript, req.CustomerID, req.Now, nil, importArgs{
		Product: req.Rule.Product, Rules: rulesArg(req.Rule), Version: req.Rule.Version,
		ID: req.CheckID, Actor: req.Actor, Granted: req.GrantedAt.UnixMilli(),
	}, &r)
	if err != nil {
		return validation.Grant{}, err
	}
	switch r.Kind {
	case kindOK:
		return decodeGrant(req.CustomerID, r.Grant)
	case kindRefused:
		return validation.Grant{}, refusal(r.Violations, req.Rule)
	}
	return validation.Grant{}, scriptError(importScript.name, r.Kind, r.Reason, "", 0)
}

// Audit implements validation.Store. The script returns both lists whole
// (each is capped, 200 and 100 events) and the live hold, whose checked
// event is written only when the hold ends; each list is ordered by time
// (newest first; an event written late, such as a checked event, sorts
// into place), then both are merged, filtered and limited here.
func (s *Store) Audit(ctx context.Context, customerID string, limit int, now time.Time, types ...validation.EventType) ([]validation.Event, error) {
	var r auditReply
	if err := s.run(ctx, auditScript, customerID, now, nil, noArgs{}, &r); err != nil {
		return nil, err
	}
	var lists [2][]validation.Event
	for i, raw := range [2][]string{r.State, r.Tries} {
		for _, e := range raw {
			ev, err := decodeEvent(e)
			if err != nil {
				return nil, err
			}
			lists[i] = append(lists[i], ev)
		}
	}
	if r.Hold != "" {
		c, err := decodeCheck(customerID, r.Hold)
		if err != nil {
			return nil, err
		}
		lists[0] = append(lists[0], checkedEvent(c))
	}
	// The caps apply before the filter: they are what Redis keeps.
	for i, cap := range [2]int{s.opts.AuditCap, triesCap} {
		slices.SortStableFunc(lists[i], func(a, b validation.Event) int { return b.At.Compare(a.At) })
		lists[i] = lists[i][:min(cap, len(lists[i]))]
	}
	return validation.MergeAudit(lists[0], lists[1], limit, types...), nil
}

// decodeViolations turns the scripts' violations into the domain's.
func decodeViolations(raw string) ([]validation.Violation, error) {
	var vs []wireViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		return nil, fmt.Errorf("decode violations %q: %w", raw, err)
	}
	out := make([]validation.Violation, 0, len(vs))
	for _, v := range vs {
		out = append(out, validation.Violation{
			Reason: v.Reason, Product: v.Product, CheckID: v.CheckID,
			Since: ms(v.Since), Until: ms(v.Until), By: v.By, Note: v.Note, Products: v.Products,
			RequiredRating: intPtr(v.Required), Rating: intPtr(v.Score), Rule: v.Rule, Limit: v.Limit, Held: holdings(v.Held),
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

func holdings(ws []wireHolding) []validation.Holding {
	if len(ws) == 0 {
		return nil
	}
	out := make([]validation.Holding, len(ws))
	for i, w := range ws {
		out[i] = validation.Holding{Product: w.Product, CheckID: w.CheckID, Since: ms(w.Since), Until: ms(w.Until)}
	}
	return out
}

// refusal turns the script's violations of rule into the domain's refusal
// error.
func refusal(raw string, rule validation.Rule) error {
	vs, err := decodeViolations(raw)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("refusal without violations")
	}
	return validation.Refusal(worded(vs, rule))
}

// scriptError turns a script's error reply (kind 'error', a reason, its
// detail and, for a wrong code, the attempts left) into the domain's error:
// the reply carries the facts, package validation words them.
func scriptError(name string, kind replyKind, reason, detail string, attemptsLeft int) error {
	if kind != kindError {
		return fmt.Errorf("redis %s: unexpected reply kind %q", name, kind)
	}
	switch validation.Reason(reason) {
	case validation.ReasonHoldExpired:
		return validation.HoldExpired(detail)
	case validation.ReasonAlreadyRedeemed:
		return validation.AlreadyRedeemed(detail)
	case validation.ReasonOTPLocked:
		return validation.OTPLocked()
	case validation.ReasonOTPRateLimited:
		ms, _ := strconv.ParseInt(detail, 10, 64)
		return validation.OTPRateLimited(time.Duration(ms) * time.Millisecond)
	case validation.ReasonGrantReleased:
		return validation.GrantReleased(detail)
	case validation.ReasonOTPInvalid:
		if detail == "replay" {
			return validation.NotTheRedeemingCode()
		}
		return validation.WrongCode(attemptsLeft)
	case validation.ReasonTokenInvalid:
		return validation.TokenMismatch(detail)
	case validation.ReasonCheckNotHeld:
		return validation.CheckNotHeld(validation.CheckStatus(detail))
	case validation.ReasonCheckNotFound:
		return validation.CheckNotFound()
	case validation.ReasonForbidden:
		return validation.CancelForbidden(detail)
	case reasonCheckAbandoned:
		// Only a check script Redis ran after arbiter gave it up gets this,
		// and nobody waits for its answer.
		return validation.CheckAbandoned()
	case validation.ReasonIdempotencyKeyReused:
		return validation.IdempotencyKeyReused()
	case validation.ReasonOutboxFull:
		return validation.OutboxFull()
	}
	return fmt.Errorf("redis %s: unexpected error reply %s (%s)", name, reason, detail)
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

// eachMaster runs fn on every master of a Redis Cluster, at once, or on rdb
// itself when it is one server; addr names the master ("" for one server).
func eachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node redis.Cmdable, addr string) error) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return fn(ctx, m, m.Options().Addr) })
	}
	return fn(ctx, rdb, "")
}
