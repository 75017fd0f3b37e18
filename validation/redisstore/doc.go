// Package redisstore is arbiter's Store on Redis, and the branch UI's
// session store (Sessions): all of arbiter's Redis calls. go-redis is
// imported only here, by cmd/ (clients built from config) and by redistest;
// SetLogger sends go-redis's own log lines through slog.
// Every Store operation is one Lua script run with EVALSHA, so each check,
// each redemption (token or OTP) and each cancellation is one atomic step
// and one round trip.
//
// # Key layout
//
// All keys of one customer share the hash tag {customer} (arb:{C}:hold,
// arb:{C}:meta, ...), so every script touches one Redis Cluster slot and
// runs unchanged on a cluster. README.md's "Key layout" table describes
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
