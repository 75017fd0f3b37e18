// Package inmem is a validation.Store in memory: the twin of redisstore
// that the domain's own tests run on, without Redis.
//
// Every method takes one mutex for its whole run, as each of redisstore's
// methods is one Lua script, and decides with the rule engine's reference
// in Go (validation.Rule.Evaluate and GrantViolations), which redisstore's
// Lua engine is held to, over a validation.Standing built from its state,
// returning the same *validation.Error reasons. Time is the request's Now
// only: a hold whose ExpiresAt has passed is settled (recorded expired,
// audited) by the next call that reads the customer, as redisstore
// settles a hold Redis dropped, and the customer's products' ends are
// forgotten ReleaseRequest.KeepEnded after the newest, as Redis lets
// their key expire. There are no goroutines and no wall clock, so a test
// makes a hold expire by passing a later Now. The contract suite in
// validation/storetest pins the semantics shared with redisstore.
//
// Not modelled: Redis's memory and replicas (store_full, not_durable,
// unknown outcomes), and freeing memory: ended checks stop being readable
// after Options.Retention, but nothing is ever deleted, and the audit is
// not capped. Of reconciliation (reconcile.Store) it has only
// OpenCase and ResolveCase.
package inmem
