// Package redisstore is arbiter's Store on Redis, and the branch UI's
// session store (Sessions): all of arbiter's Redis calls but those of
// reconciliation's own state (runs, findings, lease: package redisrecon),
// which touch no customer's keys. Each check, each
// redemption (token or OTP) and each cancellation is one Lua script, so one
// atomic step and one round trip: the check and the two redemptions run as
// functions of arbiter's library (FCALL, library.go), the other scripts,
// and those three on a server without functions, with EVALSHA. Which
// packages import go-redis is in docs/architecture.md's import rules,
// checked against go list. SetLogger sends go-redis's own log lines
// through slog.
//
// # Key layout
//
// All keys of one customer share the hash tag {customer} (arb:{C}:hold,
// arb:{C}:meta, ...), so every script touches one Redis Cluster slot and
// runs unchanged on a cluster. docs/architecture.md's key layout table describes
// each key, once; customerKeyNames lists them in KEYS order, codec.go
// holds the encodings and lua/prelude.lua one section per key.
//
// The branch UI's sessions and sign-in throttle (Sessions, sessions.go) are
// one key each, outside every customer, touched one key per operation:
//
//	arb:session:K      hash    v (web's encoding), seen, exp; K: SHA-256 of the cookie (PEXPIRE = idle, ≤ exp)
//	arb:signin:user:U  hash    n failed sign-ins of username U, until: the window's end (PEXPIRE = window)
//	arb:signin:addr:A  hash    the same for client address A
package redisstore
