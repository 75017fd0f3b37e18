package redisstore

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/arbiter-bank/arbiter/validation"
)

// The Go↔Lua contract of every script is declared once, here on the Go
// side, as two structs: its arguments and its reply. Their `lua` tags name
// the Lua locals; the order of the fields is the wire order, and nobody
// writes a position by hand:
//
//   - luaArgs generates the Lua line that names the script's ARGV
//     ("local product, max = ARGV[5], tonumber(ARGV[6])"), which script()
//     puts in front of the body, and argv builds the matching ARGV from a
//     value of the struct;
//   - luaReply generates the Lua function reply{...} that turns a table
//     with named fields into the flat array Redis returns, and decodeReply
//     fills the reply struct from that array.
//
// Tag options: `lua:"name,num"` makes the argument a number in Lua
// (tonumber), and `lua:"name,num,raw=name_str"` also names the argument as
// it arrived, a string (name_str: the same value, not another unit), for
// the scripts to write: Lua turns a number into a string with printf each
// time it writes one (a concatenation, an argument to redis.call), where
// writing the string the caller sent costs nothing.
// A reply field may be a string, an int64 or a []string (a Lua table of
// strings). A missing reply field arrives as its zero value.
// Positional ARGV cost nothing over hand-written ones; a cjson table would
// cost a decode per call.

// commonArgs start every script's ARGV; the prelude reads them.
type commonArgs struct {
	Now            int64 `lua:"NOW,num,raw=NOW_STR"`                         // the caller's clock, ms
	AuditCap       int   `lua:"AUDIT_CAP,num"`                               // state changes kept per customer
	Retention      int64 `lua:"RETENTION,num,raw=RETENTION_STR"`             // ms an ended check stays readable
	AuditRetention int64 `lua:"AUDIT_RETENTION,num,raw=AUDIT_RETENTION_STR"` // ms the audit and meta outlive the last write
	OutboxCap      int   `lua:"OUTBOX_CAP,num"`                              // records a slot's outbox may hold; 0: no outbox
	CompactGrants  bool  `lua:"COMPACT_GRANTS"`                              // '1': the ledger gets g1 grants and their records
}

type luaField struct {
	index int
	name  string
	num   bool
	raw   string // the string's name too, when num (raw=)
}

func luaFields(t reflect.Type) []luaField {
	var out []luaField
	for i := range t.NumField() {
		tag, ok := t.Field(i).Tag.Lookup("lua")
		if !ok {
			panic(fmt.Sprintf("redisstore: field %s.%s has no lua tag", t.Name(), t.Field(i).Name))
		}
		name, opts, _ := strings.Cut(tag, ",")
		f := luaField{index: i, name: name}
		for _, opt := range strings.Split(opts, ",") {
			switch {
			case opt == "num":
				f.num = true
			case strings.HasPrefix(opt, "raw="):
				f.raw = strings.TrimPrefix(opt, "raw=")
			case opt != "":
				panic(fmt.Sprintf("redisstore: field %s.%s: unknown lua tag option %q", t.Name(), t.Field(i).Name, opt))
			}
		}
		if f.raw != "" && !f.num {
			panic(fmt.Sprintf("redisstore: field %s.%s: raw= needs num", t.Name(), t.Field(i).Name))
		}
		out = append(out, f)
	}
	return out
}

// luaArgs is the Lua line naming the fields of args (a struct value) as
// locals, reading ARGV from position first.
func luaArgs(args any, first int) string {
	names, vals := argsBinding(args, first)
	return luaLocal(names, vals)
}

// argsBinding returns the Lua names of the fields of args and the ARGV
// expressions they are read from, starting at position first (a raw= name
// after its number's).
func argsBinding(args any, first int) (names, vals []string) {
	for i, f := range luaFields(reflect.TypeOf(args)) {
		arg := "ARGV[" + strconv.Itoa(first+i) + "]"
		if !f.num {
			names, vals = append(names, f.name), append(vals, arg)
			continue
		}
		names, vals = append(names, f.name), append(vals, "tonumber("+arg+")")
		if f.raw != "" {
			names, vals = append(names, f.raw), append(vals, arg)
		}
	}
	return names, vals
}

// luaLocal is the Lua line "local a, b = x, y" ("" for no names).
func luaLocal(names, vals []string) string {
	if len(names) == 0 {
		return ""
	}
	return "local " + luaAssign(names, vals)
}

// luaAssign is the Lua line "a, b = x, y" ("" for no names).
func luaAssign(names, vals []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.Join(names, ", ") + " = " + strings.Join(vals, ", ") + "\n"
}

// argv appends the fields of args to out, in declaration order.
func argv(out []any, args any) []any {
	v := reflect.ValueOf(args)
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Bool {
			out = append(out, map[bool]string{true: "1", false: ""}[f.Bool()])
			continue
		}
		out = append(out, f.Interface())
	}
	return out
}

// luaReply is the Lua function reply(t) of a reply struct: the flat array
// of t's named fields in declaration order (false for a missing one, which
// Redis returns as nil).
func luaReply(reply any) string {
	fs := luaFields(reflect.TypeOf(reply))
	vals := make([]string, len(fs))
	for i, f := range fs {
		vals[i] = "t." + f.name + " or false"
	}
	return "local function reply(t) return {" + strings.Join(vals, ", ") + "} end\n"
}

// decodeReply fills *dst, a pointer to a reply struct, from a script's array.
func decodeReply(dst any, res []any) error {
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		if i >= len(res) || res[i] == nil {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(str(res, i))
		case reflect.Int64, reflect.Int:
			switch x := res[i].(type) {
			case int64:
				f.SetInt(x)
			case string:
				n, err := strconv.ParseInt(x, 10, 64)
				if err != nil {
					return fmt.Errorf("reply field %s: %w", v.Type().Field(i).Name, err)
				}
				f.SetInt(n)
			}
		case reflect.Slice:
			raw, _ := res[i].([]any)
			ss := make([]string, len(raw))
			for j := range raw {
				ss[j] = str(raw, j)
			}
			f.Set(reflect.ValueOf(ss))
		default:
			return fmt.Errorf("reply field %s: unsupported kind %s", v.Type().Field(i).Name, f.Kind())
		}
	}
	return nil
}

func reflectType(v any) reflect.Type { return reflect.TypeOf(v) }

// replyKind is what a script's reply says happened (its kind field). The
// scripts name each as KIND.<kind> (luaConstants), never by a string.
type replyKind string

const (
	kindOK         replyKind = "ok"
	kindHeld       replyKind = "held"        // check: the hold is placed
	kindGranted    replyKind = "granted"     // redeem: the hold became a grant
	kindReplay     replyKind = "replay"      // a retry: what the first call decided
	kindRefused    replyKind = "refused"     // violations: the rules that failed
	kindNeedRating replyKind = "need_rating" // ask the bureau and call again (validation.ErrRatingNeeded)
	kindError      replyKind = "error"       // reason and its facts (detail, attempts_left)
)

var replyKinds = []replyKind{kindOK, kindHeld, kindGranted, kindReplay, kindRefused, kindNeedRating, kindError}

// kindOf reads the kind of a reply not yet decoded (a redemption's, in
// runWaited): a reply struct with a kind has it first
// (TestRepliesStartWithTheirKind).
func kindOf(res []any) replyKind { return replyKind(str(res, 0)) }

// violationReasons are the rules a script may refuse with, in the order
// evaluate applies them. A script builds each with violation(REASON.<reason>,
// {...}), whose fields are wireViolation's.
var violationReasons = []validation.Reason{
	validation.ReasonCustomerBlocked, validation.ReasonCaseOpen, validation.ReasonRatingTooLow,
	validation.ReasonAlreadyHoldsProduct, validation.ReasonConflictingProduct, validation.ReasonFamilyLimit,
	validation.ReasonCoolingOff, validation.ReasonHoldExists,
}

// errorReasons are the reasons of the scripts' error replies: scriptError
// words each from its facts, but grant_not_found (release) and not_found
// (unblock, case), which the method that runs the script words, knowing the
// customer.
var errorReasons = []validation.Reason{
	validation.ReasonHoldExpired, validation.ReasonAlreadyRedeemed, validation.ReasonOTPLocked,
	validation.ReasonOTPRateLimited, validation.ReasonGrantReleased, validation.ReasonOTPInvalid,
	validation.ReasonTokenInvalid, validation.ReasonCheckNotHeld, validation.ReasonCheckNotFound,
	validation.ReasonForbidden, validation.ReasonIdempotencyKeyReused, reasonCheckAbandoned,
	validation.ReasonGrantNotFound, validation.ReasonNotFound, validation.ReasonOutboxFull,
}

// reasonCheckAbandoned is the check script's answer once arbiter gave the
// check up (abandon.lua): never a client's reason (scriptError makes it
// unavailable).
const reasonCheckAbandoned validation.Reason = "check_abandoned"

// wireViolation is a violation as the scripts encode it (cjson): its json
// names are the only fields a script's violation may have.
type wireViolation struct {
	Reason   validation.Reason `json:"reason"`
	Product  string            `json:"product"`
	CheckID  string            `json:"check_id"`
	Since    float64           `json:"since"`
	Until    float64           `json:"until"`
	By       string            `json:"by"`
	Note     string            `json:"note"`
	Products []string          `json:"products"`
	Required *float64          `json:"required"`
	Score    *float64          `json:"score"`
	Rule     string            `json:"rule"`
	Limit    int               `json:"limit"`
	Held     []wireHolding     `json:"held"`
}

// wireHolding is an entry of a family_limit violation's held list.
type wireHolding struct {
	Product string  `json:"product"`
	CheckID string  `json:"check_id"`
	Since   float64 `json:"since"`
	Until   float64 `json:"until"`
}

// luaConstants gives the scripts what Go declares of the replies and
// violations: KIND.<kind> (replyKinds), REASON.<reason> (violationReasons
// and errorReasons), and violation(reason, v), which makes v a violation.
// TestLuaSpeaksOnlyWhatGoDeclares fails when a script writes a kind, a
// reason or a violation Go does not declare, or by hand.
func luaConstants() string {
	var b strings.Builder
	table := func(name string, vals []string) {
		fmt.Fprintf(&b, "local %s = {", name)
		for i, v := range vals {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = '%s'", v, v)
		}
		b.WriteString("}\n")
	}
	kinds := make([]string, len(replyKinds))
	for i, k := range replyKinds {
		kinds[i] = string(k)
	}
	table("KIND", kinds)
	var reasons []string
	for _, r := range slices.Concat(violationReasons, errorReasons) {
		reasons = append(reasons, string(r))
	}
	table("REASON", reasons)
	b.WriteString("local function violation(reason, v)\n  v.reason = reason\n  return v\nend\n")
	return b.String()
}

// The contract of each script (lua/<name>.lua): its arguments, then its
// reply. Replies share field names: kind (a replyKind), reason and detail
// (of an error), violations (JSON wireViolations, of a refusal).

// The rules and the policy version of a decision (rulesArg, rules.go) are
// arguments of every script that decides: rules is read by rules_of
// (lua/rules.lua), version is recorded on what the decision writes.

type checkArgs struct {
	Product   string `lua:"product"`
	Rules     string `lua:"rules"`   // rulesArg
	Version   string `lua:"version"` // the policy version in force
	ID        string `lua:"id"`
	Secret    string `lua:"secret"` // hex
	Token     string `lua:"token"`  // digest of the approval token's secret, kept by the check
	TTL       int64  `lua:"ttl,num,raw=ttl_str"`
	Actor     string `lua:"actor"`
	Agent     string `lua:"agent"`
	ReqHash   string `lua:"req_hash"`
	IdemTTL   int64  `lua:"idem_ttl,num,raw=idem_ttl_str"`
	ScoreArg  string `lua:"score_arg"` // see scoreArg
	RatingTTL int64  `lua:"rating_ttl,num"`
}

type checkReply struct {
	Kind       replyKind `lua:"kind"` // held, replay, refused, need_rating, error
	Reason     string    `lua:"reason"`
	Fence      int64     `lua:"fence"` // held
	Check      string    `lua:"check"` // replay: the check, with its secret while held
	Violations string    `lua:"violations"`
}

type redeemTokenArgs struct {
	Product string `lua:"product"`
	ID      string `lua:"id"`
	Actor   string `lua:"actor"`
	Rules   string `lua:"rules"`
	Version string `lua:"version"`
	Token   string `lua:"token"` // the token secret's digest; '' when the caller verified the signature
}

type redeemOTPArgs struct {
	Product     string `lua:"product"`
	Code        string `lua:"code"`
	Actor       string `lua:"actor"`
	Rules       string `lua:"rules"`
	Version     string `lua:"version"`
	MaxAttempts int    `lua:"max_attempts,num"`
	Period      int    `lua:"period,num"` // seconds
	Skew        int    `lua:"skew,num"`
	OTPBudget   int    `lua:"otp_budget,num"` // wrong codes per customer per window
	OTPWindow   int64  `lua:"otp_window,num"` // ms
}

type redeemReply struct {
	Kind         replyKind `lua:"kind"` // granted, replay, refused, error
	Reason       string    `lua:"reason"`
	Detail       string    `lua:"detail"`
	AttemptsLeft int64     `lua:"attempts_left"`
	Grant        string    `lua:"grant"`
	Violations   string    `lua:"violations"`
}

type noArgs struct{}

type idArgs struct {
	ID string `lua:"id"`
}

type actorArgs struct {
	Actor string `lua:"actor"`
}

type cancelArgs struct {
	ID      string `lua:"id"`
	Actor   string `lua:"actor"`
	Allowed string `lua:"allowed"` // csv, or * for any product
	Agent   string `lua:"agent"`
	Placer  string `lua:"placer"`
}

type abandonArgs struct {
	ID    string `lua:"id"`
	Actor string `lua:"actor"`
}

type blockArgs struct {
	Reason  string `lua:"reason"`
	UntilMS int64  `lua:"until_ms,num"` // 0: until lifted
	Actor   string `lua:"actor"`
}

// checkOpReply is the reply of the scripts about one check (get, cancel,
// abandon, block, unblock).
type checkOpReply struct {
	Kind   replyKind `lua:"kind"`
	Reason string    `lua:"reason"`
	Detail string    `lua:"detail"`
	Check  string    `lua:"check"`
}

type customerReply struct {
	Hold   string   `lua:"hold"`
	Block  string   `lua:"block"` // JSON
	Grants []string `lua:"grants"`
}

type eligibilityArgs struct {
	Product   string `lua:"product"`
	Rules     string `lua:"rules"`
	ScoreArg  string `lua:"score_arg"`
	RatingTTL int64  `lua:"rating_ttl,num"`
}

type eligibilityReply struct {
	Kind       replyKind `lua:"kind"`
	Violations string    `lua:"violations"`
	Rating     string    `lua:"rating"`
}

type importArgs struct {
	Product string `lua:"product"`
	Rules   string `lua:"rules"`
	Version string `lua:"version"`
	ID      string `lua:"id"`
	Actor   string `lua:"actor"`
	Granted int64  `lua:"granted,num"`
}

type releaseArgs struct {
	Product   string `lua:"product"`
	Actor     string `lua:"actor"`
	Want      string `lua:"want"`           // check id, or '' for the most recent
	KeepEnded int64  `lua:"keep_ended,num"` // ms K_ENDED is kept (ended_put)
}

type grantReply struct {
	Kind       replyKind `lua:"kind"`
	Reason     string    `lua:"reason"`
	Grant      string    `lua:"grant"`
	Violations string    `lua:"violations"`
}

type auditReply struct {
	State []string `lua:"state"`
	Tries []string `lua:"tries"`
	Hold  string   `lua:"hold"`
}

// caseArgs and caseReply are case.lua's contract (Store.OpenCase and
// ResolveCase, reconcile.go).
type caseArgs struct {
	Op    string `lua:"op"`    // open | resolve
	Case  string `lua:"case"`  // open: the case, JSON
	Actor string `lua:"actor"` // who opens or resolves it
	Note  string `lua:"note"`  // resolve: the admin's note
}

type caseReply struct {
	Kind    replyKind `lua:"kind"`    // ok | error
	Reason  string    `lua:"reason"`  // error: not_found
	Case    string    `lua:"case"`    // the case, JSON
	Outcome string    `lua:"outcome"` // opened | refreshed | resolved
}
