// Package redisstore is arbiter's Store on Redis, and the branch UI's
// session store (Sessions): all of arbiter's Redis calls. go-redis is
// imported only here, by cmd/ (clients built from config) and by redistest.
// Every Store operation is one Lua script run with EVALSHA, so each check,
// each redemption (token or OTP) and each cancellation is one atomic step
// and one round trip.
//
// # Key layout
//
// All keys of one customer share the hash tag {customer}, so every script
// touches one Redis Cluster slot and runs unchanged on a cluster:
//
//	arb:{C}:meta     hash    fence counter, newest check id and whether its hold may be live
//	arb:{C}:hold     hash    the live hold: check id, product, fence, TOTP secret, wrong-code count (PX = hold TTL)
//	arb:{C}:grants   hash    check id → grant JSON; never expires
//	arb:{C}:checks   hash    check id → check JSON; kept for the retention after the check ends
//	arb:{C}:log      list    check ids in creation order, to prune checks in constant time
//	arb:{C}:audit    list    event JSON, newest first, capped (Options.AuditCap)
//	arb:{C}:block    hash    blocklist entry: reason, until, by, at (PEXPIREAT = until)
//	arb:{C}:rating   string  the bureau's cached score (PX = the policy's cache_ttl)
//	arb:{C}:idem:H   string  idempotency record of a check request (H: hash of client and key)
//	arb:{C}:sync     string  marker a replayed redemption writes so WAIT has something to wait for (10 s)
//
// The meta hash and the grants never expire: the fence must grow for ever,
// and grants are the ledger. Everything else expires or is capped.
//
// The branch UI's sessions and sign-in throttle (Sessions, sessions.go) are
// one key each, outside every customer, touched one key per operation:
//
//	arb:session:K      hash    v (web's encoding), seen, exp; K: SHA-256 of the cookie (PEXPIRE = idle, ≤ exp)
//	arb:signin:user:U  hash    n failed sign-ins of username U, until: the window's end (PEXPIRE = window)
//	arb:signin:addr:A  hash    the same for client address A
package redisstore
