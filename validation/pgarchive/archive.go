package pgarchive

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arbiter-bank/arbiter/validation"
)

// schema creates or completes the archive's tables; every statement is
// idempotent.
//
//go:embed schema.sql
var schema string

// migrationLock is the advisory lock key under which Open applies schema,
// so that instances starting at once do not race on CREATE ... IF NOT
// EXISTS (which is not safe against a concurrent creation). Its bytes
// spell "arbiter" and the lock's purpose, 1.
const migrationLock int64 = 0x0061726269746572<<8 | 1

// ErrInvalidRecord is returned by Write for a record whose ID is not
// validation.RecordID(Customer, Seq): nothing of the batch is written.
var ErrInvalidRecord = errors.New("pgarchive: invalid record")

// Options configure an Archive. The zero value is valid: no subscribers,
// no conflict hook, pgxpool's default pool size.
type Options struct {
	// Subscribers receive webhooks: Write queues a new record for every
	// subscriber whose Types hold the record's validation.WebhookType.
	// Default: none, so nothing is queued.
	Subscribers []validation.Subscriber
	// OnConflict, when set, is called once for each conflicting record
	// newly kept aside (a known id with other content), after the Write
	// that met it committed: a hook for a counter and an alert. It must not
	// block. Default: nothing is called.
	OnConflict func(id string)
	// MaxConns caps the connection pool. Default (0): pgxpool's, the
	// greater of 4 and the number of CPUs.
	MaxConns int32
}

// Archive is the PostgreSQL archive. Its methods are safe for concurrent
// use, also from several processes sharing one database.
type Archive struct {
	pool       *pgxpool.Pool
	onConflict func(id string)
	// subscribers maps a webhook type to the ids of its subscribers, in
	// Options order.
	subscribers map[string][]string
	// known lists every configured subscriber id, for QueueDepth.
	known []string
}

var (
	_ validation.Archive    = (*Archive)(nil)
	_ validation.Deliveries = (*Archive)(nil)
)

// Open connects to the database dsn names (a PostgreSQL URL or key=value
// string) and creates or completes the archive's schema, safely when
// several instances open the same database at once. It returns an error
// when the database cannot be reached or the schema cannot be applied.
func Open(ctx context.Context, dsn string, opts Options) (*Archive, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: parse dsn: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: connect: %w", err)
	}
	a := &Archive{pool: pool, onConflict: opts.OnConflict, subscribers: map[string][]string{}}
	for _, s := range opts.Subscribers {
		if !slices.Contains(a.known, s.ID) {
			a.known = append(a.known, s.ID)
		}
		for _, t := range s.Types {
			if !slices.Contains(a.subscribers[t], s.ID) {
				a.subscribers[t] = append(a.subscribers[t], s.ID)
			}
		}
	}
	if err := a.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return a, nil
}

// migrate applies schema under the migration lock, in one transaction.
func (a *Archive) migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgarchive: apply schema: %w", err)
	}
	return nil
}

// Close closes the pool's connections, waiting for those in use.
func (a *Archive) Close() { a.pool.Close() }

// Ping checks that the database answers.
func (a *Archive) Ping(ctx context.Context) error {
	if err := a.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgarchive: ping: %w", err)
	}
	return nil
}

// Count returns how many records the archive holds (conflicts aside).
func (a *Archive) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM arbiter_events").Scan(&n); err != nil {
		return 0, fmt.Errorf("pgarchive: count: %w", err)
	}
	return n, nil
}

// Events returns every archived record of customer, in sequence order
// (none: an empty slice and no error).
func (a *Archive) Events(ctx context.Context, customer string) ([]validation.Record, error) {
	rows, err := a.pool.Query(ctx, "SELECT "+recordColumns+" FROM arbiter_events WHERE customer_id = $1 ORDER BY seq", customer)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: events of %s: %w", customer, err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (validation.Record, error) {
		var r dbRecord
		err := row.Scan(r.dest()...)
		return r.record(), err
	})
	if err != nil {
		return nil, fmt.Errorf("pgarchive: events of %s: %w", customer, err)
	}
	return recs, nil
}

// Conflict is a record kept aside: its id was archived with other content.
type Conflict struct {
	validation.Record
	FirstSeen time.Time // when this content first arrived (UTC)
}

// Conflicts returns every conflict kept aside, oldest first.
func (a *Archive) Conflicts(ctx context.Context) ([]Conflict, error) {
	rows, err := a.pool.Query(ctx, "SELECT "+recordColumns+", first_seen_at FROM arbiter_event_conflicts ORDER BY first_seen_at, id, digest")
	if err != nil {
		return nil, fmt.Errorf("pgarchive: conflicts: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Conflict, error) {
		var r dbRecord
		var seen time.Time
		err := row.Scan(append(r.dest(), &seen)...)
		return Conflict{Record: r.record(), FirstSeen: seen.UTC()}, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgarchive: conflicts: %w", err)
	}
	return cs, nil
}
