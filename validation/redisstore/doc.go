// Package redisstore is arbiter's Store on Redis: the only package that
// imports go-redis. Every operation is one Lua script run with EVALSHA, so
// each check, each redemption (token or OTP) and each cancellation is one
// atomic step and one round trip.
//
// # Key layout
//
// All keys of one customer share the hash tag {customer} (arb:{C}:hold,
// arb:{C}:meta, ...), so every script touches one Redis Cluster slot and
// runs unchanged on a cluster. README.md's "Key layout" table describes
// each key, once; customerKeyNames lists them in KEYS order, codec.go
// holds the encodings and lua/prelude.lua one section per key.
package redisstore
