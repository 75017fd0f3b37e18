package validation

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"
)

// Exporter moves the outboxes to the archive, and has the sweeper record
// the expiries nobody reads: each round it asks the Outbox which slots
// have work, takes each such slot's lease (a slot another instance holds
// is skipped), settles the slot's due holds (Outbox.Sweep), then reads the
// slots' records oldest first, many slots at a time, writes them to the
// Archive, and only once the archive has them trims them from their
// outboxes (under the lease).
//
// Delivery is at least once: a crash or a lost lease between the write and
// the trim makes the next round write the same records again, which the
// archive ignores by id. Nothing is trimmed that the archive does not
// hold. While the archive is down, the outboxes grow until each reaches
// the store's bound, where decisions are refused (ErrOutboxFull), never
// dropped. Any number of instances may run an Exporter on the same store.
type Exporter struct {
	Outbox  Outbox
	Archive Archive
	// Owner names this instance in the slots' leases; it must be unique
	// among the instances.
	Owner string
	// Now is the clock the scripts run on (the Redis-aligned clock): it
	// decides which holds are due.
	Now func() time.Time
	// Interval is the pause between rounds that found nothing more to do;
	// default 1s. A hold that expires unread is recorded within about
	// Interval, and a record reaches the archive within about Interval
	// after it is written.
	Interval time.Duration
	// LeaseTTL is how long a slot's lease lasts without renewal; default
	// 15s. A crashed instance's slots are taken over after it.
	LeaseTTL time.Duration
	// Batch is how many records one archive write takes; default 500.
	Batch int
	// SweepBatch is how many due holds of a slot one round settles;
	// default 500.
	SweepBatch int
	// Rounds, when set, is told of each round (metrics, logs).
	Rounds func(ExportRound)
	// Archived, when set, is called after a write that archived new
	// records (webhooks are sent from the archive).
	Archived func()
}

// ExportRound is what one round of an Exporter found and did.
type ExportRound struct {
	Waiting  int64         // records in the outboxes when the round began
	Fullest  int64         // records in the fullest outbox then
	Oldest   time.Duration // age of the oldest of them (0: none)
	Archived int           // records this round wrote to the archive (new ones)
	Trimmed  int           // records this round trimmed from outboxes
	Swept    int           // expiries this round recorded
	Err      error         // the round's first error (archive or store)
	// ArchiveErr is set when the archive refused a write: the round left
	// the records in their outboxes.
	ArchiveErr error
}

func (e *Exporter) interval() time.Duration { return cmpOr(e.Interval, time.Second) }
func (e *Exporter) leaseTTL() time.Duration { return cmpOr(e.LeaseTTL, 15*time.Second) }
func (e *Exporter) batch() int              { return cmpOr(e.Batch, 500) }
func (e *Exporter) sweepBatch() int         { return cmpOr(e.SweepBatch, 500) }

func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Run runs rounds until ctx ends; it returns ctx's error.
func (e *Exporter) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		r := e.Round(ctx)
		if e.Rounds != nil && ctx.Err() == nil {
			e.Rounds(r)
		}
		t.Reset(e.interval())
	}
}

// Round runs one round: every slot with work that this instance can lease
// is swept and drained.
func (e *Exporter) Round(ctx context.Context) ExportRound {
	var r ExportRound
	now := e.Now()
	pending, err := call(ctx, e, func(ctx context.Context) ([]OutboxSlot, error) { return e.Outbox.Pending(ctx, now) })
	if err != nil {
		r.Err = err
		return r
	}
	slots := make([]int, len(pending))
	due := map[int]bool{}
	for i, sl := range pending {
		slots[i] = sl.Slot
		due[sl.Slot] = sl.Due
		r.Waiting += sl.Len
		r.Fullest = max(r.Fullest, sl.Len)
		if !sl.Oldest.IsZero() {
			r.Oldest = max(r.Oldest, now.Sub(sl.Oldest))
		}
	}
	// Instances start at different slots, so that they share the slots
	// rather than all racing for the first.
	if len(slots) > 1 {
		k := rand.IntN(len(slots))
		slots = append(slots[k:], slots[:k]...)
	}
	e.drain(ctx, slots, due, &r)
	return r
}

// drainSlots is how many slots one read of drain asks at once.
const drainSlots = 64

// drain works through slots a group at a time: it takes (or renews) the
// group's leases, so that a long round keeps the slots it is still to
// reach, sweeps the due ones it holds, then reads up to a batch of each
// held slot at once, writes them (a batch per transaction, each slot's
// records in order, so each customer's), and only then trims them; a
// slot that gave a full batch is read again. Once the archive refused a
// write, the remaining groups are only swept.
func (e *Exporter) drain(ctx context.Context, slots []int, due map[int]bool, r *ExportRound) {
	queue := slices.Clone(slots)
	for len(queue) > 0 && ctx.Err() == nil {
		group := queue[:min(len(queue), drainSlots)]
		queue = queue[len(group):]
		group, err := call(ctx, e, func(ctx context.Context) ([]int, error) { return e.Outbox.Lease(ctx, group, e.Owner, e.leaseTTL()) })
		if err != nil {
			r.fail(err)
			return
		}
		for _, slot := range group {
			if due[slot] && ctx.Err() == nil {
				delete(due, slot)
				n, err := call(ctx, e, func(ctx context.Context) (int, error) { return e.Outbox.Sweep(ctx, slot, e.Now(), e.sweepBatch()) })
				r.Swept += n
				r.fail(err)
			}
		}
		if r.ArchiveErr != nil {
			continue
		}
		batches, err := call(ctx, e, func(ctx context.Context) ([]OutboxBatch, error) { return e.Outbox.Read(ctx, group, e.batch()) })
		if err != nil {
			r.fail(err)
			return
		}
		var recs []Record
		for _, b := range batches {
			recs = append(recs, b.Records...)
		}
		for len(recs) > 0 {
			chunk := recs[:min(len(recs), e.batch())]
			recs = recs[len(chunk):]
			n, err := call(ctx, e, func(ctx context.Context) (int, error) { return e.Archive.Write(ctx, chunk) })
			if err != nil {
				r.ArchiveErr = err
				r.fail(err)
				break
			}
			r.Archived += n
			if n > 0 && e.Archived != nil {
				e.Archived()
			}
		}
		if r.ArchiveErr != nil {
			continue // nothing trimmed that the archive does not hold
		}
		trimmed, err := call(ctx, e, func(ctx context.Context) ([]int, error) { return e.Outbox.Trim(ctx, batches, e.Owner, e.leaseTTL()) })
		if err != nil {
			r.fail(err)
			return
		}
		// A slot not trimmed went to another instance, which writes its
		// records again (the archive ignores them) and trims them.
		for _, b := range batches {
			if slices.Contains(trimmed, b.Slot) {
				r.Trimmed += len(b.Records)
				if len(b.Records) == e.batch() {
					queue = append(queue, b.Slot)
				}
			}
		}
	}
}

// call runs one call of the store or the archive with a deadline of half
// a lease, so that a server that stops answering (packets dropped) fails
// the round, which the alarm and the metrics then tell, instead of
// hanging it.
func call[T any](ctx context.Context, e *Exporter, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, e.leaseTTL()/2)
	defer cancel()
	return f(ctx)
}

func (r *ExportRound) fail(err error) {
	if err != nil && r.Err == nil {
		r.Err = err
	}
}
