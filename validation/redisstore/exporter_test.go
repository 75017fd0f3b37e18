package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// memArchive is an Archive in memory that refuses writes while down, and
// counts what it was given again.
type memArchive struct {
	mu      sync.Mutex
	recs    map[string]validation.Record
	order   map[string][]int64 // per customer, seqs in the order archived
	again   int
	down    atomic.Bool
	written atomic.Int64
	wrote   chan struct{} // a write happened
}

func newMemArchive() *memArchive {
	return &memArchive{recs: map[string]validation.Record{}, order: map[string][]int64{}, wrote: make(chan struct{}, 1)}
}

// waitWritten waits until n records were archived.
func (a *memArchive) waitWritten(tb testing.TB, n int64) {
	tb.Helper()
	deadline := time.After(30 * time.Second)
	for a.written.Load() < n {
		select {
		case <-a.wrote:
		case <-deadline:
			tb.Fatalf("archived %d records, want %d", a.written.Load(), n)
		}
	}
}

func (a *memArchive) Write(_ context.Context, recs []validation.Record) (int, error) {
	if a.down.Load() {
		return 0, errors.New("archive down")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range recs {
		if old, ok := a.recs[r.ID]; ok {
			if !reflect.DeepEqual(old, r) {
				return n, fmt.Errorf("record %s again with other content", r.ID)
			}
			a.again++
			continue
		}
		a.recs[r.ID] = r
		a.order[r.Customer] = append(a.order[r.Customer], r.Seq)
		n++
	}
	a.written.Add(int64(n))
	select {
	case a.wrote <- struct{}{}:
	default:
	}
	return n, nil
}

// TestExporterArchivesEveryRecordOnce: two exporters share the outboxes of
// many slots while decisions go on and the archive is down for a while;
// every record the scripts wrote ends in the archive once, in
// per-customer order, and the outboxes are empty. While the archive is
// down nothing is trimmed. (Not on miniredis: a round asks every slot,
// which takes the embedded store seconds; arbiter has an archive only on
// a real Redis.)
func TestExporterArchivesEveryRecordOnce(t *testing.T) {
	forEachOutboxBackend(t, testOutboxCap, func(t *testing.T, b outboxBackend) {
		if b.mr != nil {
			t.Skip("the exporter runs on a real Redis only (ARBITER_ARCHIVE_URL needs ARBITER_REDIS_URL)")
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		arch := newMemArchive()
		var wg sync.WaitGroup
		for _, owner := range []string{"x", "y"} {
			ex := &validation.Exporter{Outbox: b.store, Archive: arch, Owner: owner, Now: time.Now, Interval: 100 * time.Millisecond, Batch: 7}
			wg.Add(1)
			go func() { defer wg.Done(); ex.Run(ctx) }()
		}
		const customers = 40
		work := func() {
			for i := range customers {
				if err := cycle(b.store, fmt.Sprintf("EX-%d", i)); err != nil {
					t.Error(err)
				}
			}
		}
		work()
		arch.waitWritten(t, customers*3)
		arch.down.Store(true)
		before := arch.written.Load()
		work()
		// Down: the records wait in the outboxes.
		slots, err := b.store.Pending(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var waiting int64
		for _, s := range slots {
			waiting += s.Len
		}
		if waiting != customers*3 || arch.written.Load() != before {
			t.Fatalf("with the archive down, %d records wait and %d were archived; want every record of the second pass waiting", waiting, arch.written.Load()-before)
		}
		arch.down.Store(false)
		work()
		want := int64(3 * customers * 3) // three passes of cycle: checked, redeemed, released
		arch.waitWritten(t, want)
		cancel()
		wg.Wait()
		if got := arch.written.Load(); got != want {
			t.Fatalf("archived %d records, want %d", got, want)
		}
		for cust, seqs := range arch.order {
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]+1 {
					t.Fatalf("%s archived in order %v", cust, seqs)
				}
			}
		}
		// Stopped between a write and its trim, an exporter leaves records
		// the archive has: one more round of each (it holds its slots'
		// leases) writes them again, which the archive ignores, and trims.
		for _, owner := range []string{"x", "y"} {
			ex := &validation.Exporter{Outbox: b.store, Archive: arch, Owner: owner, Now: time.Now, Batch: 7}
			if r := ex.Round(context.Background()); r.Err != nil || r.Archived != 0 {
				t.Fatalf("a last round of %s: %+v; want no error and nothing new", owner, r)
			}
		}
		if rest := drain(t, b.store, time.Now()); len(rest) != 0 {
			t.Fatalf("%d records left in the outboxes", len(rest))
		}
	})
}
