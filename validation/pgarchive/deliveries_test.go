package pgarchive_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/pgarchive"
)

// lease is the tests' claim lease.
const lease = time.Minute

// later is a time when every test record is due.
var later = t0.Add(24 * time.Hour)

func claim(tb testing.TB, a *pgarchive.Archive, sub string, now time.Time, n int) []validation.Delivery {
	tb.Helper()
	ds, err := a.Claim(context.Background(), sub, now, lease, n)
	if err != nil {
		tb.Fatalf("Claim(%s): %v", sub, err)
	}
	return ds
}

// ids returns the deliveries' record ids, sorted.
func ids(ds []validation.Delivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	sort.Strings(out)
	return out
}

func done(tb testing.TB, a *pgarchive.Archive, sub, id string) {
	tb.Helper()
	if err := a.Done(context.Background(), sub, id); err != nil {
		tb.Fatalf("Done(%s, %s): %v", sub, id, err)
	}
}

func TestQueueOnlySubscribedTypes(t *testing.T) {
	t.Parallel()
	a, _ := open(t, pgarchive.Options{Subscribers: []validation.Subscriber{
		{ID: "cards", Types: []string{validation.WebhookHoldExpired}},
		{ID: "loans", Types: []string{validation.WebhookHoldExpired, validation.WebhookGrantReleased}},
		{ID: "quiet"},
	}})
	batch := []validation.Record{
		rec("C-1", 1, validation.EventChecked), // never announced
		rec("C-1", 2, validation.EventExpired),
		rec("C-1", 3, validation.EventReleased),
		rec("C-2", 1, validation.EventRefused), // never announced
	}
	write(t, a, batch)
	write(t, a, batch) // not new: queued once
	depth, err := a.QueueDepth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"cards": 1, "loans": 2, "quiet": 0}; !reflect.DeepEqual(depth, want) {
		t.Fatalf("QueueDepth = %v, want %v", depth, want)
	}
	oldest, err := a.Oldest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]time.Time{"cards": batch[1].At, "loans": batch[1].At}; !reflect.DeepEqual(oldest, want) {
		t.Fatalf("Oldest = %v, want %v", oldest, want)
	}
	ds := claim(t, a, "cards", later, 10)
	if len(ds) != 1 || !reflect.DeepEqual(ds[0], validation.Delivery{Subscriber: "cards", Record: batch[1]}) {
		t.Fatalf("cards' deliveries = %+v, want only %v with no attempt before", ds, batch[1])
	}
	if ds := claim(t, a, "quiet", later, 10); len(ds) != 0 {
		t.Fatalf("a subscriber of no type got %v", ds)
	}
}

func TestClaimHeadOfLine(t *testing.T) {
	t.Parallel()
	a, _ := open(t, pgarchive.Options{Subscribers: []validation.Subscriber{{ID: "cards", Types: validation.WebhookTypes}}})
	write(t, a, recs("C", 1, 3, validation.EventExpired))
	write(t, a, recs("D", 1, 1, validation.EventCancelled))

	ds := claim(t, a, "cards", later, 10)
	if got, want := ids(ds), []string{"C/1", "D/1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first claim = %v, want each customer's head %v", got, want)
	}
	// C/1 is in flight: C/2 waits behind it, even once due.
	if ds := claim(t, a, "cards", later, 10); len(ds) != 0 {
		t.Fatalf("claim while the heads are leased = %v, want none", ids(ds))
	}
	done(t, a, "cards", "C/1")
	if got, want := ids(claim(t, a, "cards", later, 10)), []string{"C/2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claim after C/1 is done = %v, want %v (D/1 still leased)", got, want)
	}
	// A failed head keeps its customer's next record back until it succeeds.
	if err := a.Retry(context.Background(), "cards", "C/2", later, "503"); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(claim(t, a, "cards", later, 10)), []string{"C/2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claim after C/2's retry = %v, want %v", got, want)
	}
	done(t, a, "cards", "C/2")
	done(t, a, "cards", "C/2") // again: no error
	if got, want := ids(claim(t, a, "cards", later, 10)), []string{"C/3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claim after C/2 is done = %v, want %v", got, want)
	}
}

func TestClaimLeaseAndRetry(t *testing.T) {
	t.Parallel()
	a, _ := open(t, pgarchive.Options{Subscribers: []validation.Subscriber{{ID: "cards", Types: validation.WebhookTypes}}})
	r := rec("C", 1, validation.EventExpired)
	write(t, a, []validation.Record{r})

	if ds := claim(t, a, "cards", r.At.Add(-time.Millisecond), 10); len(ds) != 0 {
		t.Fatalf("claim before the event's time = %v, want none", ids(ds))
	}
	now := r.At
	if ds := claim(t, a, "cards", now, 10); len(ds) != 1 || ds[0].Attempts != 0 {
		t.Fatalf("first claim = %+v, want C/1 with 0 attempts before", ds)
	}
	if ds := claim(t, a, "cards", now.Add(lease-time.Millisecond), 10); len(ds) != 0 {
		t.Fatalf("claim within the lease = %v, want none", ids(ds))
	}
	now = now.Add(lease)
	ds := claim(t, a, "cards", now, 10)
	if len(ds) != 1 || ds[0].Attempts != 1 {
		t.Fatalf("claim once the lease ended = %+v, want C/1 with 1 attempt before", ds)
	}

	retryAt := now.Add(10 * time.Minute)
	if err := a.Retry(context.Background(), "cards", "C/1", retryAt, "connection refused"); err != nil {
		t.Fatal(err)
	}
	// The retry time replaces the lease, earlier or later than it.
	if ds := claim(t, a, "cards", retryAt.Add(-time.Millisecond), 10); len(ds) != 0 {
		t.Fatalf("claim before the retry time = %v, want none", ids(ds))
	}
	if ds := claim(t, a, "cards", retryAt, 10); len(ds) != 1 || ds[0].Attempts != 2 {
		t.Fatalf("claim at the retry time = %+v, want C/1 with 2 attempts before", ds)
	}
	if err := a.Retry(context.Background(), "cards", "nobody/1", retryAt, "x"); err != nil {
		t.Fatalf("Retry of a delivery not queued = %v, want nil", err)
	}

	if _, err := a.Claim(context.Background(), "cards", now, 0, 10); !errors.Is(err, pgarchive.ErrInvalidLease) {
		t.Fatalf("Claim with no lease: err = %v, want ErrInvalidLease", err)
	}
	if ds := claim(t, a, "cards", later, 0); len(ds) != 0 {
		t.Fatalf("Claim of 0 = %v, want none", ids(ds))
	}
}

// TestClaimConcurrently runs several senders against one queue until it is
// empty: no delivery is claimed twice (the lease outlasts the test), and
// each customer's records are delivered in sequence order.
func TestClaimConcurrently(t *testing.T) {
	t.Parallel()
	a, _ := open(t, pgarchive.Options{Subscribers: []validation.Subscriber{{ID: "cards", Types: validation.WebhookTypes}}})
	const customers, perCustomer, senders = 40, 10, 8
	var batch []validation.Record
	for c := range customers {
		batch = append(batch, recs(fmt.Sprintf("C-%d", c), 1, perCustomer, validation.EventExpired)...)
	}
	write(t, a, batch)

	var mu sync.Mutex
	claimed := map[string]int{}
	delivered := map[string]int64{} // customer -> last seq done
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	ctx := context.Background()
	for range senders {
		wg.Go(func() {
			for idle := 0; idle < 20; {
				ds, err := a.Claim(ctx, "cards", later, time.Hour, 3)
				if err != nil {
					errs <- err
					return
				}
				if len(ds) == 0 {
					idle++
					time.Sleep(5 * time.Millisecond) // others may hold the heads
					continue
				}
				idle = 0
				for _, d := range ds {
					mu.Lock()
					claimed[d.ID]++
					if last := delivered[d.Customer]; d.Seq != last+1 {
						errs <- fmt.Errorf("%s delivered after seq %d", d.ID, last)
					}
					delivered[d.Customer] = d.Seq
					mu.Unlock()
					if err := a.Done(ctx, "cards", d.ID); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := len(claimed), customers*perCustomer; got != want {
		t.Errorf("%d deliveries claimed, want %d", got, want)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
	depth, err := a.QueueDepth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := depth["cards"]; got != 0 {
		t.Errorf("queue depth after the run = %d, want 0", got)
	}
}
