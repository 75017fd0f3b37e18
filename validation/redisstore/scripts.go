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
)

var (
	checkScript    = redis.NewScript(luaPrelude + luaCheck)
	redeemScript   = redis.NewScript(luaTOTP + luaPrelude + luaRedeem)
	getScript      = redis.NewScript(luaPrelude + luaGet)
	cancelScript   = redis.NewScript(luaPrelude + luaCancel)
	customerScript = redis.NewScript(luaPrelude + luaCustomer)
	releaseScript  = redis.NewScript(luaPrelude + luaRelease)
	importScript   = redis.NewScript(luaPrelude + luaImport)
	auditScript    = redis.NewScript(luaPrelude + luaAudit)
	eligScript     = redis.NewScript(luaPrelude + luaEligibility)
	blockScript    = redis.NewScript(luaPrelude + luaBlock)
	unblockScript  = redis.NewScript(luaPrelude + luaUnblock)
)

// scripts lists every script with the name used in errors and metrics.
var scripts = map[string]*redis.Script{
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
}
