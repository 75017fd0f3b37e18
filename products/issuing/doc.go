// Package issuing is a product service's side of arbiter: it turns an
// approved application into an issued product exactly once, and keeps its
// own database consistent with arbiter's ledger.
//
// An application carries an approval token or the customer's one-time code.
// Service.Apply verifies a token offline first (forged, expired, misdirected
// or stale tokens are refused without a call to arbiter), writes a durable
// pending row, redeems with arbiter, and then issues the product in one
// database transaction that refuses a fence lower than the highest one
// recorded for the customer (a fencing token). If that local write fails
// after arbiter granted the product, the grant is released again
// (compensation) and the error says so.
//
// The pending row is what makes a crash between the redemption and the
// insert harmless: Service.Reconcile, run at start and then periodically,
// reads each pending customer at arbiter and either issues the product that
// arbiter granted, or forgets an application arbiter never granted (and
// cancels its hold). Closing a product works the same way in reverse: the
// local row goes first, then the grant is released at arbiter, and a release
// that fails stays pending until it succeeds. The rule behind both orders is
// that a product may exist at arbiter without existing here for a moment,
// never the other way round: arbiter's grant is what stops the excluded
// product, so it must never be missing while the product exists.
//
// issuing talks to arbiter only through the Arbiter interface, which
// *client.Client implements, and to its database through Store
// (sqlitestore.Store).
package issuing
