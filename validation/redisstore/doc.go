// Package redisstore is arbiter's Store on Redis: the customers' holds,
// grants and audit, their cases, and the Redis clock; reconciliation's own
// state (runs, findings, lease) is package redisrecon's, and the branch
// UI's sessions are package redissessions'. Each check, each
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
// Script runs another adapter's standalone script (the branch UI's
// sessions in web/redissessions, reconciliation's lease in redisrecon) by
// the same rule: sent once, never resent after its reply may have been
// lost.
//
// Migrate (arbiter migrate) rewrites what earlier releases stored in
// retired encodings, one customer per script (migrate.go).
package redisstore
