package reconcile

import (
	"context"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// Store is what a Reconciler needs beyond the Ledger (validation.Store):
// pipelined reads of grants, a scan of every grant, the run's state and the
// open cases. redisrecon.Store implements it on Redis.
type Store interface {
	// Grants returns the grants of each customer (pipelined: one round trip).
	Grants(ctx context.Context, customers []string) (map[string][]validation.Grant, error)
	// ScanGrants calls fn with batches of customers' grants until every
	// customer with a grant was seen (Cluster: every master). A customer may
	// appear twice if its keys move during the scan.
	ScanGrants(ctx context.Context, fn func(batch map[string][]validation.Grant) error) error
	// MarkSeen records that product's feed lists the customers in run.
	MarkSeen(ctx context.Context, run, product string, customers []string) error
	// Seen reports, per customer, whether MarkSeen recorded it.
	Seen(ctx context.Context, run, product string, customers []string) ([]bool, error)
	// DropRun deletes a run's temporary data (the seen sets of products).
	DropRun(ctx context.Context, run string, products []string) error

	// SaveRun stores a run's state (kept for the retention).
	SaveRun(ctx context.Context, r Run) error
	// Run returns a run: validation.ErrNotFound when unknown or expired.
	Run(ctx context.Context, id string) (Run, error)
	// AddFindings appends findings to a run's list.
	AddFindings(ctx context.Context, run string, fs []Finding) error
	// Findings returns up to limit findings of a run from offset.
	Findings(ctx context.Context, run string, offset, limit int) ([]Finding, error)

	// AcquireLease takes the lease for holder for ttl: false when another
	// holds it (its id is returned).
	AcquireLease(ctx context.Context, holder string, ttl time.Duration) (bool, string, error)
	// RenewLease extends the lease if holder still holds it.
	RenewLease(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	// LeaseHolder returns the id of the run holding the lease ("" when none).
	LeaseHolder(ctx context.Context) (string, error)
	// ReleaseLease gives the lease up if holder holds it.
	ReleaseLease(ctx context.Context, holder string) error

	// ClaimSchedule claims the scheduled run of the coming interval: true
	// for one caller per interval, whatever the instances.
	ClaimSchedule(ctx context.Context, holder string, every time.Duration) (bool, error)

	// LastCount returns the customers product's feed listed in the last
	// successful run (0 when none).
	LastCount(ctx context.Context, product string) (int, error)
	// SetLastCount records a successful run's count.
	SetLastCount(ctx context.Context, product string, n int, at time.Time) error

	// OrphanCandidates returns the grants of product that earlier runs
	// found orphan: check id → when first found.
	OrphanCandidates(ctx context.Context, product string) (map[string]time.Time, error)
	// SetOrphanCandidates replaces them (an empty map drops them all).
	SetOrphanCandidates(ctx context.Context, product string, c map[string]time.Time) error

	// OpenCase records (or refreshes) the customer's case, audited
	// case_opened the first time.
	OpenCase(ctx context.Context, c validation.Case, now time.Time) error
	// Cases returns the open cases, oldest first.
	Cases(ctx context.Context, limit int) ([]validation.Case, error)
	// ResolveCase closes the customer's case, audited case_resolved with
	// actor and note: validation.ErrNotFound when none is open.
	ResolveCase(ctx context.Context, customerID, actor, note string, now time.Time) (validation.Case, error)
}
