// Package validation is arbiter's domain: the exclusivity policy, checks,
// holds, grants, the refusal reasons that explain a decision, and the Service
// that applies them through a Store.
//
// The invariant the package exists for: a customer never holds more than one
// product of an exclusive group, nor a product more often than its policy
// allows, whatever the interleaving of checks and redemptions. The Service
// never reads and then writes: every decision that guards the invariant is
// delegated to a single atomic Store operation (one Lua script in
// redisstore), and the Service only prepares its inputs and interprets its
// outcome.
//
// The package imports neither HTTP, Redis nor token libraries.
package validation
