package pgarchive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arbiter-bank/arbiter/validation"
)

// ErrInvalidLease is returned by Claim for a lease that is not positive:
// a claim must keep other claimers away for some time.
var ErrInvalidLease = errors.New("pgarchive: lease must be positive")

// claimQuery leases up to $4 of subscriber $1's rows that are due at $2
// and are the head of their customer (no row of the same subscriber and
// customer with a smaller seq, leased or not), until $3. FOR UPDATE SKIP
// LOCKED makes concurrent claimers pass over each other's rows; a row a
// concurrent claim leased meanwhile is re-checked against next_at when
// locked, and dropped. It returns each row's attempts before this claim
// with its record.
const claimQuery = `WITH claimed AS (
    UPDATE arbiter_webhook_queue q
    SET next_at = $3, attempts = q.attempts + 1
    FROM (
        SELECT w.subscriber, w.event_id, w.attempts
        FROM arbiter_webhook_queue w
        WHERE w.subscriber = $1 AND w.next_at <= $2
          AND NOT EXISTS (SELECT 1 FROM arbiter_webhook_queue h
                          WHERE h.subscriber = w.subscriber AND h.customer_id = w.customer_id AND h.seq < w.seq)
        ORDER BY w.next_at, w.event_id
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE q.subscriber = c.subscriber AND q.event_id = c.event_id
    RETURNING q.event_id, c.attempts
)
SELECT c.attempts, ` + recordColumns + `
FROM claimed c JOIN arbiter_events e ON e.id = c.event_id
ORDER BY e.at, e.id`

// Claim returns up to n of subscriber's deliveries due at now, each the
// oldest undelivered record of its customer, oldest first, and leases
// them until now+lease: no other Claim returns them before then, and
// after it they are due again (a crashed sender's claims come back).
// Delivery.Attempts counts the claims before this one. n <= 0 claims
// nothing; a lease that is not positive is ErrInvalidLease.
func (a *Archive) Claim(ctx context.Context, subscriber string, now time.Time, lease time.Duration, n int) ([]validation.Delivery, error) {
	if lease <= 0 {
		return nil, ErrInvalidLease
	}
	if n <= 0 {
		return nil, nil
	}
	rows, err := a.pool.Query(ctx, claimQuery, subscriber, now, now.Add(lease), n)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: claim for %s: %w", subscriber, err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (validation.Delivery, error) {
		var r dbRecord
		var attempts int
		err := row.Scan(append([]any{&attempts}, r.dest()...)...)
		return validation.Delivery{Subscriber: subscriber, Record: r.record(), Attempts: attempts}, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgarchive: claim for %s: %w", subscriber, err)
	}
	return ds, nil
}

// Done removes a delivered record from subscriber's queue, which makes the
// customer's next record claimable. A delivery no longer queued (Done
// already) is no error.
func (a *Archive) Done(ctx context.Context, subscriber, id string) error {
	if _, err := a.pool.Exec(ctx, "DELETE FROM arbiter_webhook_queue WHERE subscriber = $1 AND event_id = $2",
		subscriber, id); err != nil {
		return fmt.Errorf("pgarchive: done %s for %s: %w", id, subscriber, err)
	}
	return nil
}

// Retry makes a failed delivery due again at at, noting why it failed.
// A delivery no longer queued (delivered meanwhile by a later claim) is no
// error and stays delivered.
func (a *Archive) Retry(ctx context.Context, subscriber, id string, at time.Time, why string) error {
	if _, err := a.pool.Exec(ctx, "UPDATE arbiter_webhook_queue SET next_at = $3, last_error = $4 WHERE subscriber = $1 AND event_id = $2",
		subscriber, id, at, why); err != nil {
		return fmt.Errorf("pgarchive: retry %s for %s: %w", id, subscriber, err)
	}
	return nil
}

// QueueDepth returns how many deliveries each subscriber is owed: every
// configured subscriber (0 when none), and any other that still has rows
// (a subscriber removed from the configuration).
func (a *Archive) QueueDepth(ctx context.Context) (map[string]int64, error) {
	depth := make(map[string]int64, len(a.known))
	for _, s := range a.known {
		depth[s] = 0
	}
	rows, err := a.pool.Query(ctx, "SELECT subscriber, count(*) FROM arbiter_webhook_queue GROUP BY subscriber")
	if err != nil {
		return nil, fmt.Errorf("pgarchive: queue depth: %w", err)
	}
	var s string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&s, &n}, func() error { depth[s] = n; return nil }); err != nil {
		return nil, fmt.Errorf("pgarchive: queue depth: %w", err)
	}
	return depth, nil
}

// Oldest returns, for each subscriber with deliveries owed, the time of the
// oldest undelivered event (UTC): now minus it is the subscriber's lag.
func (a *Archive) Oldest(ctx context.Context) (map[string]time.Time, error) {
	rows, err := a.pool.Query(ctx, `SELECT q.subscriber, min(e.at) FROM arbiter_webhook_queue q
JOIN arbiter_events e ON e.id = q.event_id GROUP BY q.subscriber`)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: oldest: %w", err)
	}
	oldest := map[string]time.Time{}
	var s string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&s, &at}, func() error { oldest[s] = at.UTC(); return nil }); err != nil {
		return nil, fmt.Errorf("pgarchive: oldest: %w", err)
	}
	return oldest, nil
}
