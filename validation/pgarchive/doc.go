// Package pgarchive is arbiter's durable record in PostgreSQL: it
// implements validation.Archive (the exporter writes the records the Redis
// outbox carries) and validation.Deliveries (the webhook dispatcher claims
// the deliveries the same writes queue). It is the only package that
// imports pgx.
//
// The schema (schema.sql, applied by Open) is append-only for the events:
// a record is written once per id, whatever the exporter retries, and a
// record that arrives with a known id but other content is kept aside in
// arbiter_event_conflicts, never dropped and never overwriting the first.
// The webhook queue lives beside the events, written in the same
// transaction, so a record is archived exactly when its deliveries are
// owed.
//
// Times are kept to the millisecond, arbiter's resolution: an event's At is
// truncated to the millisecond when written and read back in UTC, so a
// record read back equals the one written (with an empty Reasons read back
// as nil).
package pgarchive
