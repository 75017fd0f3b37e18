package pgarchive_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/pgarchive"
	"github.com/arbiter-bank/arbiter/validation/pgarchive/pgtest"
)

// t0 is the tests' clock: a millisecond-precise UTC time.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

// open starts a PostgreSQL server for the test and opens an archive on it.
func open(tb testing.TB, opts pgarchive.Options) (*pgarchive.Archive, *pgtest.Server) {
	tb.Helper()
	srv := pgtest.Start(tb)
	a, err := pgarchive.Open(context.Background(), srv.DSN(), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(a.Close)
	return a, srv
}

// rec returns customer's record seq, of type typ, at t0 plus seq seconds.
func rec(customer string, seq int64, typ validation.EventType) validation.Record {
	return validation.Record{ID: validation.RecordID(customer, seq), Customer: customer, Seq: seq,
		Event: validation.Event{At: t0.Add(time.Duration(seq) * time.Second), Type: typ, Product: "card",
			CheckID: fmt.Sprintf("chk-%s-%d", customer, seq), Actor: "cards", Fence: seq, PolicyVersion: "v1"}}
}

// recs returns customer's records from..to of type typ.
func recs(customer string, from, to int64, typ validation.EventType) []validation.Record {
	var rs []validation.Record
	for s := from; s <= to; s++ {
		rs = append(rs, rec(customer, s, typ))
	}
	return rs
}

func write(tb testing.TB, a *pgarchive.Archive, rs []validation.Record) int {
	tb.Helper()
	n, err := a.Write(context.Background(), rs)
	if err != nil {
		tb.Fatalf("Write: %v", err)
	}
	return n
}

func count(tb testing.TB, a *pgarchive.Archive) int64 {
	tb.Helper()
	n, err := a.Count(context.Background())
	if err != nil {
		tb.Fatalf("Count: %v", err)
	}
	return n
}

func events(tb testing.TB, a *pgarchive.Archive, customer string) []validation.Record {
	tb.Helper()
	rs, err := a.Events(context.Background(), customer)
	if err != nil {
		tb.Fatalf("Events(%s): %v", customer, err)
	}
	return rs
}

func TestWrite(t *testing.T) {
	t.Parallel()
	a, _ := open(t, pgarchive.Options{})

	t.Run("is idempotent", func(t *testing.T) {
		batch := recs("C-1", 1, 5, validation.EventChecked)
		if got, want := write(t, a, batch), 5; got != want {
			t.Fatalf("first Write = %d, want %d", got, want)
		}
		if got, want := write(t, a, batch), 0; got != want {
			t.Fatalf("second Write = %d, want %d", got, want)
		}
		if got, want := count(t, a), int64(5); got != want {
			t.Fatalf("Count = %d, want %d", got, want)
		}
	})

	t.Run("writes what overlapping batches add", func(t *testing.T) {
		write(t, a, recs("C-2", 1, 3, validation.EventChecked))
		if got, want := write(t, a, recs("C-2", 2, 6, validation.EventChecked)), 3; got != want {
			t.Fatalf("overlapping Write = %d, want %d", got, want)
		}
		if got, want := events(t, a, "C-2"), recs("C-2", 1, 6, validation.EventChecked); !reflect.DeepEqual(got, want) {
			t.Fatalf("Events = %v, want %v", got, want)
		}
	})

	t.Run("counts a record repeated in a batch once", func(t *testing.T) {
		r := rec("C-3", 1, validation.EventChecked)
		if got, want := write(t, a, []validation.Record{r, r}), 1; got != want {
			t.Fatalf("Write = %d, want %d", got, want)
		}
	})

	t.Run("refuses a record whose id is not its customer and seq", func(t *testing.T) {
		bad := rec("C-4", 2, validation.EventChecked)
		bad.ID = validation.RecordID("C-4", 3)
		before := count(t, a)
		_, err := a.Write(context.Background(), []validation.Record{rec("C-4", 1, validation.EventChecked), bad})
		if !errors.Is(err, pgarchive.ErrInvalidRecord) {
			t.Fatalf("Write err = %v, want ErrInvalidRecord", err)
		}
		if got := count(t, a); got != before {
			t.Fatalf("Count = %d after a refused batch, want %d", got, before)
		}
	})

	t.Run("writes nothing for no records", func(t *testing.T) {
		if got, want := write(t, a, nil), 0; got != want {
			t.Fatalf("Write(nil) = %d, want %d", got, want)
		}
	})
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	a, _ := open(t, pgarchive.Options{})
	paris := time.FixedZone("CET", 3600)
	full := validation.Record{ID: "K.9:x/7", Customer: "K.9:x", Seq: 7, Event: validation.Event{
		At: time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, paris), Type: validation.EventRefused, Product: "loan",
		CheckID: "chk-1", Actor: "loans", Agent: "agent-7", Reason: "cooling_off",
		Reasons: []validation.Reason{"cooling_off", "limit", "cooling_off"}, Note: "a note, with \"quotes\"",
		Fence: 1 << 40, PolicyVersion: "2026-01"}}
	bare := validation.Record{ID: "K.9:x/3", Customer: "K.9:x", Seq: 3, Event: validation.Event{
		At: t0, Type: validation.EventBlocked, Reasons: []validation.Reason{}}}
	// Written out of order: read back in sequence order.
	if got, want := write(t, a, []validation.Record{full, bare}), 2; got != want {
		t.Fatalf("Write = %d, want %d", got, want)
	}
	wantFull := full
	wantFull.At = time.Date(2026, 1, 2, 2, 4, 5, 678_000_000, time.UTC)
	wantBare := bare
	wantBare.Reasons = nil
	if got, want := events(t, a, "K.9:x"), []validation.Record{wantBare, wantFull}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Events =\n%#v\nwant\n%#v", got, want)
	}
	// The archive's copy is the same record: writing the original again
	// (sub-millisecond time, empty Reasons) is no conflict.
	if got, want := write(t, a, []validation.Record{full, bare}), 0; got != want {
		t.Fatalf("Write again = %d, want %d", got, want)
	}
	if cs, err := a.Conflicts(context.Background()); err != nil || len(cs) != 0 {
		t.Fatalf("Conflicts = %v, %v; want none", cs, err)
	}
	if got := events(t, a, "nobody"); len(got) != 0 {
		t.Fatalf("Events(nobody) = %v, want none", got)
	}
}

func TestConflict(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var reported []string
	a, _ := open(t, pgarchive.Options{OnConflict: func(id string) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, id)
	}})
	first := rec("C-1", 1, validation.EventChecked)
	write(t, a, []validation.Record{first})
	other := first
	other.Reasons = []validation.Reason{"lost_write"}

	// Each field of the content counts: a few of them here.
	fields := map[string]func(*validation.Record){
		"type":    func(r *validation.Record) { r.Type = validation.EventRefused },
		"at":      func(r *validation.Record) { r.At = r.At.Add(time.Millisecond) },
		"fence":   func(r *validation.Record) { r.Fence++ },
		"reasons": func(r *validation.Record) { r.Reasons = []validation.Reason{"lost_write"} },
	}
	for name, change := range fields {
		c := first
		change(&c)
		if got, want := write(t, a, []validation.Record{c, rec("C-1", 2+int64(len(name)), validation.EventChecked)}), 1; got != want {
			t.Fatalf("Write with a conflict on %s = %d, want %d (the other record only)", name, got, want)
		}
	}
	if got, want := write(t, a, []validation.Record{other}), 0; got != want {
		t.Fatalf("Write of a known conflict = %d, want %d", got, want)
	}
	if got, want := events(t, a, "C-1")[0], first; !reflect.DeepEqual(got, want) {
		t.Fatalf("archived record = %v, want the first content %v", got, want)
	}
	cs, err := a.Conflicts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cs), len(fields); got != want {
		t.Fatalf("%d conflicts kept, want %d: %v", got, want, cs)
	}
	for _, c := range cs {
		if c.ID != first.ID || c.FirstSeen.IsZero() || sameAs(c.Record, first) {
			t.Errorf("conflict %+v: want id %s, a first-seen time and other content", c, first.ID)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := len(reported), len(fields); got != want {
		t.Fatalf("OnConflict called %d times (%v), want %d: once per content", got, reported, want)
	}
}

func sameAs(a, b validation.Record) bool { return reflect.DeepEqual(a, b) }

// TestSameContentCoversEvent fails when validation.Event gains a field:
// the archive's columns, its content comparison (sameContent), its digest
// and this count must then be extended together.
func TestSameContentCoversEvent(t *testing.T) {
	if got, want := reflect.TypeFor[validation.Event]().NumField(), 11; got != want {
		t.Fatalf("validation.Event has %d fields, the archive stores %d: extend schema.sql and codec.go", got, want)
	}
	if got, want := reflect.TypeFor[validation.Record]().NumField(), 4; got != want {
		t.Fatalf("validation.Record has %d fields, the archive stores %d: extend schema.sql and codec.go", got, want)
	}
}

func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			a, err := pgarchive.Open(context.Background(), srv.DSN(), pgarchive.Options{})
			if err == nil {
				err = a.Ping(context.Background())
				a.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Open: %v", err)
		}
	}
}

func TestServerDownAndBack(t *testing.T) {
	t.Parallel()
	a, srv := open(t, pgarchive.Options{})
	write(t, a, recs("C-1", 1, 2, validation.EventChecked))
	srv.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Write(ctx, recs("C-1", 3, 4, validation.EventChecked)); err == nil {
		t.Fatal("Write succeeded with PostgreSQL down")
	}
	srv.Start(t)
	if got, want := write(t, a, recs("C-1", 1, 4, validation.EventChecked)), 2; got != want {
		t.Fatalf("Write after the restart = %d, want %d", got, want)
	}
	if got, want := count(t, a), int64(4); got != want {
		t.Fatalf("Count = %d, want %d", got, want)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pgarchive.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", pgarchive.Options{}); err == nil {
		t.Fatal("Open of an unreachable database succeeded")
	}
}

// BenchmarkWrite measures archive writes in the exporter's batches of 500
// new records.
func BenchmarkWrite(b *testing.B) {
	a, _ := open(b, pgarchive.Options{Subscribers: []validation.Subscriber{
		{ID: "cards", Types: validation.WebhookTypes}}})
	const batch = 500
	types := []validation.EventType{validation.EventChecked, validation.EventRedeemed, validation.EventExpired,
		validation.EventRefused}
	seq := int64(0)
	b.ResetTimer()
	for b.Loop() {
		rs := make([]validation.Record, batch)
		for i := range rs {
			seq++
			rs[i] = rec(fmt.Sprintf("C-%d", seq%1000), seq, types[seq%int64(len(types))])
		}
		if n, err := a.Write(context.Background(), rs); err != nil || n != batch {
			b.Fatalf("Write = %d, %v; want %d", n, err, batch)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "records/s")
}

// TestWriteConcurrently has two exporters write overlapping batches at
// once, as two instances do around a lease change: every record is new
// exactly once, none is taken for a conflict, and no write fails.
func TestWriteConcurrently(t *testing.T) {
	t.Parallel()
	a, _ := open(t, pgarchive.Options{Subscribers: []validation.Subscriber{{ID: "cards", Types: validation.WebhookTypes}}})
	const writers, rounds = 4, 20
	var total sync.WaitGroup
	news := make(chan int, writers*rounds)
	errs := make(chan error, writers*rounds)
	for w := range writers {
		total.Go(func() {
			for r := range int64(rounds) {
				batch := recs("C-1", r*5+1, r*5+10, validation.EventExpired)
				if w%2 == 1 { // the other order: the writers may deadlock, and Write retries
					slices.Reverse(batch)
				}
				n, err := a.Write(context.Background(), batch)
				if err != nil {
					errs <- err
					return
				}
				news <- n
			}
		})
	}
	total.Wait()
	close(news)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sum := 0
	for n := range news {
		sum += n
	}
	if got, want := sum, rounds*5+5; got != want {
		t.Fatalf("new records over all writes = %d, want %d", got, want)
	}
	if got, want := count(t, a), int64(rounds*5+5); got != want {
		t.Fatalf("Count = %d, want %d", got, want)
	}
	if cs, err := a.Conflicts(context.Background()); err != nil || len(cs) != 0 {
		t.Fatalf("Conflicts = %v, %v; want none", cs, err)
	}
	depth, err := a.QueueDepth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := depth["cards"], int64(rounds*5+5); got != want {
		t.Fatalf("queued deliveries = %d, want %d (one per record)", got, want)
	}
}
