package abandon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/abandon"
	"github.com/arbiter-bank/arbiter/validation/inmem"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// failingStore fails Abandon for one check with a bug-like error.
type failingStore struct {
	*inmem.Store
	bad string
}

func (f failingStore) Abandon(ctx context.Context, req validation.AbandonRequest) (validation.AbandonOutcome, error) {
	if req.CheckID == f.bad {
		return "", errors.New("redis abandon: unexpected reply")
	}
	return f.Store.Abandon(ctx, req)
}

// TestQueueSkipsAFailingCheck: a check the store keeps failing on goes to
// the back of the line instead of blocking the others.
func TestQueueSkipsAFailingCheck(t *testing.T) {
	store := inmem.New(inmem.Options{})
	c := storetest.NewHold(t, store, "A-9", "credit_card", time.Now())
	q := &abandon.Queue{Store: failingStore{store, "chk_bad"}}
	q.Add("A-8", "chk_bad")
	q.Add("A-9", c.ID)
	if got, want := q.Flush(context.Background()), 1; got != want {
		t.Fatalf("left after a flush = %d, want only the failing check", got)
	}
	cu, err := store.Customer(context.Background(), "A-9", time.Now())
	if err != nil || cu.Hold != nil {
		t.Fatalf("customer A-9 = %+v %v, want its hold cancelled behind the failing one", cu.Hold, err)
	}
}
