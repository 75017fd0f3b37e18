package pgarchive

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/pgarchive/pgtest"
)

// TestWriteRetriesADeadlock makes Write deadlock with another writer of
// the same two records in the other order: PostgreSQL aborts Write's
// transaction (it waited first, so its deadlock check runs first), and
// Write runs it again once the other has committed, finding both records
// archived with the same content.
func TestWriteRetriesADeadlock(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Open(ctx, srv.DSN(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	x := validation.Record{ID: "C/1", Customer: "C", Seq: 1, Event: validation.Event{At: at, Type: validation.EventChecked}}
	y := validation.Record{ID: "C/2", Customer: "C", Seq: 2, Event: validation.Event{At: at, Type: validation.EventChecked}}

	other, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	var cx columns
	cx.add(x)
	if _, err := insertRecords(ctx, other, &cx); err != nil {
		t.Fatal(err)
	}

	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := a.Write(ctx, []validation.Record{y, x}) // takes y, then waits for x
		wrote <- result{n, err}
	}()
	// Wait until Write waits for the other transaction's lock on x.
	for {
		var waiting int
		err := a.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO arbiter_events%'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var cy columns
	cy.add(y)
	if _, err := insertRecords(ctx, other, &cy); err != nil { // waits for y: the deadlock
		t.Fatalf("the other writer was the deadlock's victim: %v", err)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-wrote
	if r.err != nil || r.n != 0 {
		t.Fatalf("Write = %d, %v; want 0 new records and no error after the retry", r.n, r.err)
	}
	if cs, err := a.Conflicts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("Conflicts = %v, %v; want none", cs, err)
	}
}
