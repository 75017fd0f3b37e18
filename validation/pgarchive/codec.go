package pgarchive

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// recordColumns are a record's columns, in dbRecord.dest's order, the same
// in arbiter_events and arbiter_event_conflicts.
const recordColumns = "id, customer_id, seq, at, type, product, check_id, actor, agent, reason, reasons, note, fence, policy_version"

// dbRecord is a record as its row holds it: no reason and no reasons are
// NULL.
type dbRecord struct {
	id, customer          string
	seq                   int64
	at                    time.Time
	typ, product, checkID string
	actor, agent          string
	reason                *string
	reasons               []string
	note                  string
	fence                 int64
	policyVersion         string
}

// dest returns pointers to r's fields in recordColumns order, for Scan.
func (r *dbRecord) dest() []any {
	return []any{&r.id, &r.customer, &r.seq, &r.at, &r.typ, &r.product, &r.checkID, &r.actor, &r.agent,
		&r.reason, &r.reasons, &r.note, &r.fence, &r.policyVersion}
}

// record converts a row back: At in UTC, no reasons as nil.
func (r *dbRecord) record() validation.Record {
	rec := validation.Record{ID: r.id, Customer: r.customer, Seq: r.seq, Event: validation.Event{
		At: r.at.UTC(), Type: validation.EventType(r.typ), Product: r.product, CheckID: r.checkID,
		Actor: r.actor, Agent: r.agent, Note: r.note, Fence: r.fence, PolicyVersion: r.policyVersion}}
	if r.reason != nil {
		rec.Reason = validation.Reason(*r.reason)
	}
	for _, s := range r.reasons {
		rec.Reasons = append(rec.Reasons, validation.Reason(s))
	}
	return rec
}

// normalize returns rec as the archive keeps it: At truncated to the
// millisecond in UTC, an empty Reasons as nil.
func normalize(rec validation.Record) validation.Record {
	rec.At = rec.At.Truncate(time.Millisecond).UTC()
	if len(rec.Reasons) == 0 {
		rec.Reasons = nil
	}
	return rec
}

// sameContent reports whether two normalized records are the same record:
// every Event field, the customer and the sequence number.
// TestSameContentCoversEvent fails when Event gains a field, so that this
// comparison, dbRecord and the schema are extended together.
func sameContent(a, b validation.Record) bool {
	return a.ID == b.ID && a.Customer == b.Customer && a.Seq == b.Seq && a.At.Equal(b.At) &&
		a.Type == b.Type && a.Product == b.Product && a.CheckID == b.CheckID && a.Actor == b.Actor &&
		a.Agent == b.Agent && a.Reason == b.Reason && slices.Equal(a.Reasons, b.Reasons) &&
		a.Note == b.Note && a.Fence == b.Fence && a.PolicyVersion == b.PolicyVersion
}

// digest identifies a normalized record's content, so that a conflicting
// record exported twice is kept once.
func digest(rec validation.Record) string {
	b, err := json.Marshal([]any{rec.ID, rec.Customer, rec.Seq, rec.At.UnixMilli(), rec.Type, rec.Product,
		rec.CheckID, rec.Actor, rec.Agent, rec.Reason, rec.Reasons, rec.Note, rec.Fence, rec.PolicyVersion})
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// columns are a batch of records as the parallel arrays that unnest turns
// back into rows.
type columns struct {
	id, customer               []string
	seq, fence                 []int64
	at                         []time.Time
	typ, product, checkID      []string
	actor, agent, note, policy []string
	reason                     []*string
	reasons                    []*string // JSON arrays of strings
}

func (c *columns) add(rec validation.Record) {
	c.id = append(c.id, rec.ID)
	c.customer = append(c.customer, rec.Customer)
	c.seq = append(c.seq, rec.Seq)
	c.at = append(c.at, rec.At)
	c.typ = append(c.typ, string(rec.Type))
	c.product = append(c.product, rec.Product)
	c.checkID = append(c.checkID, rec.CheckID)
	c.actor = append(c.actor, rec.Actor)
	c.agent = append(c.agent, rec.Agent)
	var reason, reasons *string
	if rec.Reason != "" {
		s := string(rec.Reason)
		reason = &s
	}
	if len(rec.Reasons) > 0 {
		b, _ := json.Marshal(rec.Reasons)
		s := string(b)
		reasons = &s
	}
	c.reason = append(c.reason, reason)
	c.reasons = append(c.reasons, reasons)
	c.note = append(c.note, rec.Note)
	c.fence = append(c.fence, rec.Fence)
	c.policy = append(c.policy, rec.PolicyVersion)
}

// args returns the arrays in the order of unnestRecords' parameters.
func (c *columns) args() []any {
	return []any{c.id, c.customer, c.seq, c.at, c.typ, c.product, c.checkID, c.actor, c.agent,
		c.reason, c.reasons, c.note, c.fence, c.policy}
}

// unnestAlias names unnestRecords' columns when it is a subquery.
const unnestAlias = `b (id, customer_id, seq, at, type, product, check_id, actor, agent, reason, reasons, note, fence,
   policy_version, ord)`

// unnestRecords turns columns.args ($1 to $14) back into rows, in the
// batch's order, with the record's columns (recordColumns) and ord. Reasons
// travel as JSON because PostgreSQL arrays of arrays must be rectangular.
const unnestRecords = `SELECT r.id, r.customer_id, r.seq, r.at, r.type, r.product, r.check_id, r.actor, r.agent, r.reason,
       CASE WHEN r.reasons IS NULL THEN NULL
            ELSE ARRAY(SELECT x.e FROM jsonb_array_elements_text(r.reasons::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY x.n) END,
       r.note, r.fence, r.policy_version, r.ord
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[])
     WITH ORDINALITY AS r(id, customer_id, seq, at, type, product, check_id, actor, agent, reason, reasons, note,
                          fence, policy_version, ord)`
