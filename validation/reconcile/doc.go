// Package reconcile compares what the product systems say each customer
// holds (their holdings feeds) with arbiter's ledger: it imports the
// products arbiter lacks, opens a case for a double holding, and reports or
// releases orphan grants (docs/reconciliation.md).
//
// It is a client of the domain, not part of it: every import and release
// goes through validation.Store's atomic operations, so a reconciliation is
// held to the same policy as a check. The Reconciler reads feeds through
// Feed (package feed is the HTTP one) and keeps its runs, lease and
// findings in a Store.
package reconcile
