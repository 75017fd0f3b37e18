package redisstore

import (
	_ "embed"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The scripts share a prelude, the data model (lua/prelude.lua). Each is a
// package-level Script so its SHA is computed once; Store.Load sends them
// all to the server so the first call is one round trip too.
var (
	//go:embed lua/prelude.lua
	luaPrelude string
	//go:embed lua/rules.lua
	luaRules string
	//go:embed lua/check.lua
	luaCheck string
	//go:embed lua/redeem.lua
	luaRedeem string
	//go:embed lua/redeem_token.lua
	luaRedeemToken string
	//go:embed lua/redeem_otp.lua
	luaRedeemOTP string
	//go:embed lua/get.lua
	luaGet string
	//go:embed lua/cancel.lua
	luaCancel string
	//go:embed lua/customer.lua
	luaCustomer string
	//go:embed lua/release.lua
	luaRelease string
	//go:embed lua/import.lua
	luaImport string
	//go:embed lua/audit.lua
	luaAudit string
	//go:embed lua/eligibility.lua
	luaEligibility string
	//go:embed lua/block.lua
	luaBlock string
	//go:embed lua/unblock.lua
	luaUnblock string
	//go:embed lua/abandon.lua
	luaAbandon string
	//go:embed lua/sweep.lua
	luaSweep string
)

// luaGuard is the first section of every script that decides: with the
// slot's outbox at its cap, it refuses (outbox_full) before any write, so
// that no decision is made without its record (the prelude's "outbox").
const luaGuard = "if outbox_full() then return reply{kind = KIND.error, reason = REASON.outbox_full} end"

// No script carries a shebang (#!lua flags=...), on purpose. Without one,
// Redis 7 runs a script in compatibility mode, and this is what a full
// Redis (maxmemory reached, noeviction) does with it: the script starts,
// and its first command that may add memory fails with OOM unless the
// script has written already, for Redis never stops a script half-way. So
// a check, whose first write grows the data, is refused with nothing
// written (store_full), while a redemption, cancel or release, whose first
// write deletes (the hold, a grant), runs to the end. A shebang without
// allow-oom would make Redis refuse the whole script at its start, reads
// included, and miniredis (embedded mode, tests) cannot parse a shebang at
// all. The order of a script's first writes is therefore part of its
// contract (redeem_otp.lua counts an OTP attempt before verifying it, so a
// full Redis refuses right and wrong codes alike); TestStoreFull pins it.

// customerKeyNames are the keys every script gets, in KEYS order, all
// under the customer's hash tag (customerKeys); Lua names them K_<NAME>.
// A check with an Idempotency-Key adds K_IDEM. docs/architecture.md's key
// layout table describes each.
var customerKeyNames = []string{"meta", "hold", "grants", "checks", "audit", "block", "rating", "tries", "case", "ended"}

// slotKeyNames are the keys of the customer's slot that every script gets
// after the customer's (slotKeys, outbox.go): the slot's outbox and its
// expiry index, shared by every customer of the slot.
var slotKeyNames = []string{"outbox", "expiring"}

// firstExtraKey is the KEYS position of a script's first key beyond the
// customer's and its slot's (K_IDEM; the migration's v1 log).
var firstExtraKey = len(customerKeyNames) + len(slotKeyNames) + 1

// keysBinding returns the Lua names of KEYS (K_META, ..., K_OUTBOX,
// K_EXPIRING, then K_IDEM, nil unless a check has an Idempotency-Key) and
// the KEYS entries they are.
func keysBinding() (names, vals []string) {
	for i, n := range slices.Concat(customerKeyNames, slotKeyNames, []string{"idem"}) {
		names = append(names, "K_"+strings.ToUpper(n))
		vals = append(vals, "KEYS["+strconv.Itoa(i+1)+"]")
	}
	return names, vals
}

// firstArg is the ARGV position of a script's own first argument, after
// commonArgs.
var firstArg = 1 + len(luaFields(reflectType(commonArgs{})))

// script composes one script from its contract (args and reply, see
// contract.go), the prelude, the sections it needs, and its body (the last
// section). The sections and the body run in main, whose reply becomes
// {expired, main's reply}: expired is 1 when the prelude's settle recorded
// a hold's expiry, which is how arbiter counts expiries that Redis's TTLs
// make silently (see unwrap). The names of KEYS and of the common ARGV are
// the chunk's locals, set before the prelude; the script's own arguments
// are main's. A script in the function library (library) runs the same
// main, declared there once.
func script(name string, args, reply any, sections ...string) *luaScript {
	keys, keyVals := keysBinding()
	common, commonVals := argsBinding(commonArgs{}, 1)
	src := luaLocal(keys, keyVals) + luaLocal(common, commonVals) + luaConstants() + luaCodec() + luaPrelude + "\n" + luaRules + "\n" +
		luaMain("main", args, reply, sections) + "local r = main(KEYS, ARGV)\nreturn {EXPIRED, r}\n"
	return &luaScript{Script: redis.NewScript(src), src: src, name: name, args: args, reply: reply, sections: sections}
}

// luaMain is the Lua function fn(KEYS, ARGV) running a script's sections
// and body with its arguments named (luaArgs) and its reply{...} defined.
func luaMain(fn string, args, reply any, sections []string) string {
	return "local function " + fn + "(KEYS, ARGV)\n" + luaArgs(args, firstArg) + luaReply(reply) +
		strings.Join(sections, "\n") + "\nend\n"
}

// luaScript is a script, its source (for the EVAL fallback of eval), the
// name used in errors and metrics, and what it was composed from. fn is
// its function's name when it is in the function library.
type luaScript struct {
	*redis.Script
	src      string
	name     string
	fn       string
	args     any
	reply    any
	sections []string
}

var (
	checkScript       = script("check", checkArgs{}, checkReply{}, luaGuard, luaCheck)
	redeemTokenScript = script("redeem", redeemTokenArgs{}, redeemReply{}, luaGuard, luaRedeem, luaRedeemToken)
	redeemOTPScript   = script("redeem_otp", redeemOTPArgs{}, redeemReply{}, luaGuard, luaTOTP, luaRedeem, luaRedeemOTP)
	getScript         = script("get", idArgs{}, checkOpReply{}, luaGet)
	cancelScript      = script("cancel", cancelArgs{}, checkOpReply{}, luaGuard, luaCancel)
	customerScript    = script("customer", noArgs{}, customerReply{}, luaCustomer)
	releaseScript     = script("release", releaseArgs{}, grantReply{}, luaGuard, luaRelease)
	importScript      = script("import", importArgs{}, grantReply{}, luaGuard, luaImport)
	auditScript       = script("audit", noArgs{}, auditReply{}, luaAudit)
	eligScript        = script("eligibility", eligibilityArgs{}, eligibilityReply{}, luaEligibility)
	blockScript       = script("block", blockArgs{}, checkOpReply{}, luaGuard, luaBlock)
	unblockScript     = script("unblock", actorArgs{}, checkOpReply{}, luaGuard, luaUnblock)
	abandonScript     = script("abandon", abandonArgs{}, checkOpReply{}, luaGuard, luaAbandon)
	sweepScript       = script("sweep", noArgs{}, checkOpReply{}, luaSweep)
)

// scripts lists every script.
var scripts = []*luaScript{
	checkScript, redeemTokenScript, redeemOTPScript, getScript, cancelScript, customerScript, releaseScript,
	importScript, auditScript, eligScript, blockScript, unblockScript, abandonScript, sweepScript,
}
