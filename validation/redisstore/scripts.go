package redisstore

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The scripts share a prelude (helpers and the KEYS/ARGV convention, see
// lua/prelude.lua). Each is a package-level Script so its SHA is computed
// once; Store.Load sends them all to the server so the first call is one
// round trip too.
var (
	//go:embed lua/prelude.lua
	luaPrelude string
	//go:embed lua/check.lua
	luaCheck string
	//go:embed lua/redeem.lua
	luaRedeem string
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
)

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
// contract (redeem.lua counts an OTP attempt before verifying it, so a
// full Redis refuses right and wrong codes alike); TestStoreFull pins it.

// script composes one script: optional helpers, the prelude, then the body
// wrapped in a function so that every reply is {expired, body's reply}:
// expired is 1 when the prelude's settle recorded a hold's expiry, which is
// how arbiter counts expiries that Redis's TTLs make silently (see unwrap).
func script(helpers, body string) *luaScript {
	src := helpers + luaPrelude +
		"local function main()\n" + body + "\nend\nlocal reply = main()\nreturn {EXPIRED, reply}\n"
	return &luaScript{Script: redis.NewScript(src), src: src}
}

// luaScript is a script and its source, kept for the EVAL fallback of eval.
type luaScript struct {
	*redis.Script
	src string
}

var (
	checkScript    = script("", luaCheck)
	redeemScript   = script(luaTOTP, luaRedeem)
	getScript      = script("", luaGet)
	cancelScript   = script("", luaCancel)
	customerScript = script("", luaCustomer)
	releaseScript  = script("", luaRelease)
	importScript   = script("", luaImport)
	auditScript    = script("", luaAudit)
	eligScript     = script("", luaEligibility)
	blockScript    = script("", luaBlock)
	unblockScript  = script("", luaUnblock)
	abandonScript  = script("", luaAbandon)
)

// scripts lists every script with the name used in errors and metrics.
var scripts = map[string]*luaScript{
	"check":       checkScript,
	"redeem":      redeemScript,
	"get":         getScript,
	"cancel":      cancelScript,
	"customer":    customerScript,
	"release":     releaseScript,
	"import":      importScript,
	"audit":       auditScript,
	"eligibility": eligScript,
	"block":       blockScript,
	"unblock":     unblockScript,
	"abandon":     abandonScript,
}
