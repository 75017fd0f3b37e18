// Package redisrecon is reconcile.Store on Redis. It keeps reconciliation's
// own state, the runs, their findings and seen sets, the lease, the
// schedule claim, the last counts and the orphan candidates, one key each
// under arb:recon:* (store.go lists them), outside every customer's hash
// tag. What a run reads and writes of the customers (their grants in bulk,
// and the cases, which the check scripts read) stays in redisstore, next to
// the scripts and encodings of those keys; Store reaches it through its
// Customers, so no key layout is known in two packages.
package redisrecon
