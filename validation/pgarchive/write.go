package pgarchive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/arbiter-bank/arbiter/validation"
)

// Write stores recs in one transaction, in the order given, and queues a
// delivery of each new record for every subscriber of its webhook type. It
// returns how many records were new. A record whose id is archived already
// is not new: with the same content (every Event field, customer and seq)
// it changes nothing, so writing a batch again returns 0; with other
// content it is kept in arbiter_event_conflicts, and Options.OnConflict is
// called for it once the transaction committed. A record whose ID is not
// validation.RecordID(Customer, Seq) fails the whole batch with
// ErrInvalidRecord; a database error rolls the whole batch back (a
// deadlock with another writer is retried first).
func (a *Archive) Write(ctx context.Context, recs []validation.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	norm := make([]validation.Record, len(recs))
	var cols columns
	for i, rec := range recs {
		if rec.ID != validation.RecordID(rec.Customer, rec.Seq) {
			return 0, fmt.Errorf("%w: id %q is not customer %q's record %d", ErrInvalidRecord, rec.ID, rec.Customer, rec.Seq)
		}
		norm[i] = normalize(rec)
		cols.add(norm[i])
	}
	var fresh int
	var conflicts []string
	var err error
	for attempt := 1; ; attempt++ {
		fresh, conflicts, err = a.write(ctx, norm, &cols)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != deadlockDetected || attempt == writeAttempts {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("pgarchive: write %d records: %w", len(recs), err)
	}
	if a.onConflict != nil {
		for _, id := range conflicts {
			a.onConflict(id)
		}
	}
	return fresh, nil
}

// writeAttempts bounds how often Write runs its transaction when
// PostgreSQL breaks a deadlock by aborting it: two exporters writing
// overlapping batches in different orders wait on each other's rows.
const writeAttempts = 3

// deadlockDetected is PostgreSQL's SQLSTATE for a transaction aborted to
// break a deadlock.
const deadlockDetected = "40P01"

// write runs Write's transaction on normalized records: it returns how
// many were new and the ids of the conflicts it kept.
func (a *Archive) write(ctx context.Context, norm []validation.Record, cols *columns) (fresh int, conflicts []string, err error) {
	err = pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		isNew, err := insertRecords(ctx, tx, cols)
		if err != nil {
			return err
		}
		var known, queued []validation.Record
		for _, rec := range norm {
			if isNew[rec.ID] {
				delete(isNew, rec.ID) // a later copy in the batch is not new
				queued = append(queued, rec)
				continue
			}
			known = append(known, rec)
		}
		fresh = len(queued)
		if conflicts, err = keepConflicts(ctx, tx, known); err != nil {
			return err
		}
		return a.enqueue(ctx, tx, queued)
	})
	return fresh, conflicts, err
}

// insertRecords inserts the records that are not archived yet, in the
// batch's order, and returns their ids.
//
// ON CONFLICT names no constraint on purpose: a record's id and its
// (customer_id, seq) are one key written twice (Write checks the id), and
// while a concurrent transaction inserts the same record either unique
// index may be the one that meets it first. Naming only the id's would
// turn that race into a unique violation.
func insertRecords(ctx context.Context, tx pgx.Tx, cols *columns) (map[string]bool, error) {
	rows, err := tx.Query(ctx, `INSERT INTO arbiter_events (`+recordColumns+`)
SELECT id, customer_id, seq, at, type, product, check_id, actor, agent, reason, reasons, note, fence, policy_version
FROM (`+unnestRecords+`) `+unnestAlias+`
ORDER BY ord
ON CONFLICT DO NOTHING
RETURNING id`, cols.args()...)
	if err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	isNew := make(map[string]bool, len(ids))
	for _, id := range ids {
		isNew[id] = true
	}
	return isNew, nil
}

// keepConflicts compares the records whose id was archived already with
// the archived content, keeps those that differ in arbiter_event_conflicts
// (once per content), and returns the ids of the conflicts kept now.
func keepConflicts(ctx context.Context, tx pgx.Tx, known []validation.Record) ([]string, error) {
	if len(known) == 0 {
		return nil, nil
	}
	ids := make([]string, len(known))
	for i, rec := range known {
		ids[i] = rec.ID
	}
	rows, err := tx.Query(ctx, "SELECT "+recordColumns+" FROM arbiter_events WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read archived: %w", err)
	}
	archived := map[string]validation.Record{}
	var r dbRecord
	_, err = pgx.ForEachRow(rows, r.dest(), func() error {
		archived[r.id] = r.record()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read archived: %w", err)
	}
	var kept []string
	for _, rec := range known {
		if first, ok := archived[rec.ID]; ok && sameContent(first, rec) {
			continue
		}
		var c columns
		c.add(rec)
		tag, err := tx.Exec(ctx, `INSERT INTO arbiter_event_conflicts (digest, `+recordColumns+`)
SELECT $15, id, customer_id, seq, at, type, product, check_id, actor, agent, reason, reasons, note, fence, policy_version
FROM (`+unnestRecords+`) `+unnestAlias+`
ON CONFLICT (id, digest) DO NOTHING`, append(c.args(), digest(rec))...)
		if err != nil {
			return nil, fmt.Errorf("keep conflict %s: %w", rec.ID, err)
		}
		if tag.RowsAffected() > 0 {
			kept = append(kept, rec.ID)
		}
	}
	return kept, nil
}

// enqueue queues each new record for the subscribers of its webhook type,
// due at the event's time.
func (a *Archive) enqueue(ctx context.Context, tx pgx.Tx, recs []validation.Record) error {
	var subs, ids, customers []string
	var seqs []int64
	var due []time.Time
	for _, rec := range recs {
		t, ok := validation.WebhookType(rec.Type)
		if !ok {
			continue
		}
		for _, s := range a.subscribers[t] {
			subs, ids, customers = append(subs, s), append(ids, rec.ID), append(customers, rec.Customer)
			seqs, due = append(seqs, rec.Seq), append(due, rec.At)
		}
	}
	if len(subs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO arbiter_webhook_queue (subscriber, event_id, customer_id, seq, next_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])
ON CONFLICT (subscriber, event_id) DO NOTHING`, subs, ids, customers, seqs, due)
	if err != nil {
		return fmt.Errorf("enqueue deliveries: %w", err)
	}
	return nil
}
