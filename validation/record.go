package validation

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Record is one audit event as the outbox carries it to the archive and
// to webhook subscribers: the event, its customer, and its place in the
// customer's sequence. The script that decides writes the event to the
// customer's audit and to its slot's outbox in the same atomic step, so a
// Record exists exactly when its change does.
type Record struct {
	// ID is stable and unique: the customer and the sequence number,
	// "<customer>/<seq>" (RecordID). Exporting a record twice writes it once.
	ID       string
	Customer string
	// Seq orders the customer's records: each script appends its events
	// with the next numbers. A customer whose meta expired (about the audit
	// retention after its last hold or import) starts again from the
	// clock's milliseconds, past every number it was given before.
	Seq int64
	Event
}

// RecordID is the id of a customer's record seq: "<customer>/<seq>". A
// customer id never contains '/', so the id names one record.
func RecordID(customer string, seq int64) string {
	return customer + "/" + strconv.FormatInt(seq, 10)
}

// ParseRecordID splits a record id into its customer and sequence number.
func ParseRecordID(id string) (customer string, seq int64, ok bool) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil || seq <= 0 || !ValidCustomerID(id[:i]) {
		return "", 0, false
	}
	return id[:i], seq, true
}

// Announced event types: the webhook event type of each audit event type
// that is announced to product services (WebhookType).
const (
	WebhookHoldExpired   = "hold_expired"
	WebhookHoldCancelled = "hold_cancelled"
	WebhookGrantReleased = "grant_released"
	WebhookGrantImported = "grant_imported"
	WebhookCaseOpened    = "case_opened"
	WebhookCaseResolved  = "case_resolved"
)

// WebhookTypes lists the announced event types, in the order docs/api.md
// documents them.
var WebhookTypes = []string{WebhookHoldExpired, WebhookHoldCancelled, WebhookGrantReleased, WebhookGrantImported,
	WebhookCaseOpened, WebhookCaseResolved}

// WebhookType returns the webhook event type announcing an audit event of
// type t, and false for the types that are not announced (a check, a
// redemption and a refusal are answered to their caller; blocks are an
// admin's).
func WebhookType(t EventType) (string, bool) {
	switch t {
	case EventExpired:
		return WebhookHoldExpired, true
	case EventCancelled:
		return WebhookHoldCancelled, true
	case EventReleased:
		return WebhookGrantReleased, true
	case EventImported:
		return WebhookGrantImported, true
	case EventCaseOpened:
		return WebhookCaseOpened, true
	case EventCaseResolved:
		return WebhookCaseResolved, true
	}
	return "", false
}

// Outbox is the Redis side of the durable record: one outbox per Redis
// Cluster slot (a stream in that slot), the expiry index beside it, and a
// lease per slot so that any number of arbiter instances share the work
// (the Exporter). Every method is safe to call from several instances at
// once: a lease only saves duplicate work, never guards correctness
// (archive writes are idempotent by record id; a sweep settles through
// the same script any read would).
type Outbox interface {
	// Pending lists the slots whose outbox holds records or whose expiry
	// index holds a hold due at now, with the outbox's length and the time
	// of its oldest record (zero when empty).
	Pending(ctx context.Context, now time.Time) ([]OutboxSlot, error)
	// Lease takes or renews the leases of slots for owner, for ttl, and
	// returns the slots owner holds (another owner holds the rest).
	Lease(ctx context.Context, slots []int, owner string, ttl time.Duration) ([]int, error)
	// Read returns up to n of the oldest records of each slot (slots with
	// none are left out), each batch with the position after its last
	// record, for Trim.
	Read(ctx context.Context, slots []int, n int) ([]OutboxBatch, error)
	// Trim removes each batch's records, up to and including its Upto,
	// from the slots whose lease owner still holds (nothing from the
	// others), renewing those leases for ttl, and returns the slots it
	// trimmed.
	Trim(ctx context.Context, batches []OutboxBatch, owner string, ttl time.Duration) ([]int, error)
	// Sweep settles up to n holds of the slot that expired by now and
	// that nobody has touched since, returning how many it settled. Their
	// expiry is recorded, and so reaches the outbox, as a read would
	// record it.
	Sweep(ctx context.Context, slot int, now time.Time, n int) (int, error)
}

// OutboxBatch is records read from one slot's outbox, oldest first, and
// the position after the last of them.
type OutboxBatch struct {
	Slot    int
	Records []Record
	Upto    string
}

// OutboxSlot is one slot with work, as Outbox.Pending reports it.
type OutboxSlot struct {
	Slot   int
	Len    int64     // records waiting in the slot's outbox
	Oldest time.Time // the oldest waiting record's time (zero when Len is 0)
	Due    bool      // the expiry index has a hold due
}

// Archive is the durable record (pgarchive: PostgreSQL). Write is
// idempotent by record id: writing a record again changes nothing, and a
// record whose id is known with other content is kept aside as a conflict
// (never dropped, never overwriting the first), which only a Redis
// failover that lost acknowledged writes can cause.
type Archive interface {
	// Write stores recs in one transaction, in order, with their webhook
	// deliveries; it returns how many were new.
	Write(ctx context.Context, recs []Record) (int, error)
}

// Subscriber is a product service that asked to be told of events: its
// client id and the webhook types it receives (WebhookTypes).
type Subscriber struct {
	ID    string
	Types []string
}

// Delivery is one record owed to one subscriber.
type Delivery struct {
	Subscriber string
	Record
	Attempts int // attempts made before this one
}

// Deliveries is the webhook queue the archive keeps beside the records
// (Archive.Write enqueues a record for every subscriber of its type in the
// same transaction). Deliveries to a subscriber are ordered per customer:
// only the oldest undelivered record of each customer is ever claimed, so
// a record is delivered after every earlier one of its customer.
type Deliveries interface {
	// Claim returns up to n of the subscriber's deliveries that are due at
	// now, each the oldest undelivered one of its customer, and marks them
	// in flight until now+lease (another Claim skips them until then, so
	// instances share the queue and a crashed sender's claims come back).
	Claim(ctx context.Context, subscriber string, now time.Time, lease time.Duration, n int) ([]Delivery, error)
	// Done removes a delivered record from the subscriber's queue.
	Done(ctx context.Context, subscriber, id string) error
	// Retry makes a failed delivery due again at at, noting why it failed.
	Retry(ctx context.Context, subscriber, id string, at time.Time, why string) error
}
