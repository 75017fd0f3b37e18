package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

func open(tb testing.TB) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "svc.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func product(customer, check string, fence int64) issuing.Product {
	return issuing.Product{CustomerID: customer, Product: "credit_card", CheckID: check, Fence: fence,
		IssuedAt: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), Channel: issuing.ChannelToken}
}

func TestStore(t *testing.T) {
	ctx := context.Background()

	t.Run("issue is idempotent by check and clears the pending row", func(t *testing.T) {
		s := open(t)
		p, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1", CheckID: "chk_1", Fence: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, replayed, err := s.Issue(ctx, product("C1", "chk_1", 3), p.ID); err != nil || replayed {
			t.Fatalf("Issue = %v replayed %v, want nil false", err, replayed)
		}
		got, replayed, err := s.Issue(ctx, product("C1", "chk_1", 3), p.ID)
		if err != nil || !replayed || got.CheckID != "chk_1" || !got.IssuedAt.Equal(product("", "", 0).IssuedAt) {
			t.Fatalf("second Issue = %+v replayed %v err %v, want the same product replayed", got, replayed, err)
		}
		if ps, _ := s.Pendings(ctx); len(ps) != 0 {
			t.Fatalf("Pendings = %v, want none", ps)
		}
		if _, _, err := s.Issue(ctx, product("C1", "chk_2", 4), 0); !errors.Is(err, issuing.ErrAlreadyIssued) {
			t.Fatalf("Issue from another check = %v, want ErrAlreadyIssued", err)
		}
	})

	t.Run("a lower fence is refused", func(t *testing.T) {
		s := open(t)
		if _, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1", CheckID: "chk_5", Fence: 5}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1", CheckID: "chk_4", Fence: 4}); !errors.Is(err, issuing.ErrStaleFence) {
			t.Fatalf("Begin(lower fence) = %v, want ErrStaleFence", err)
		}
		if _, _, err := s.Issue(ctx, product("C1", "chk_4", 4), 0); !errors.Is(err, issuing.ErrStaleFence) {
			t.Fatalf("Issue(lower fence) = %v, want ErrStaleFence", err)
		}
		if ps, _ := s.Pendings(ctx); len(ps) != 1 {
			t.Fatalf("Pendings = %v, want only the first", ps)
		}
	})

	t.Run("close moves the product out and records a pending release", func(t *testing.T) {
		s := open(t)
		if _, _, err := s.Issue(ctx, product("C1", "chk_1", 5), 0); err != nil {
			t.Fatal(err)
		}
		p, pend, err := s.CloseProduct(ctx, "C1", time.Now())
		if err != nil || p.CheckID != "chk_1" || pend.Action != issuing.ActionRelease {
			t.Fatalf("CloseProduct = %+v %+v %v", p, pend, err)
		}
		if _, err := s.Product(ctx, "C1"); !errors.Is(err, issuing.ErrNotFound) {
			t.Fatalf("Product after close = %v, want ErrNotFound", err)
		}
		if _, _, err := s.CloseProduct(ctx, "C1", time.Now()); !errors.Is(err, issuing.ErrNotFound) {
			t.Fatalf("second CloseProduct = %v, want ErrNotFound", err)
		}
		// The fence stays: an older approval is still stale.
		if _, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1", CheckID: "chk_0", Fence: 4}); !errors.Is(err, issuing.ErrStaleFence) {
			t.Fatalf("Begin(older fence after close) = %v, want ErrStaleFence", err)
		}
	})

	t.Run("concurrent writers queue and holdings page", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := fmt.Sprintf("C%02d", i)
				p, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: c, CheckID: "chk_" + c, Fence: 1})
				if err == nil {
					_, _, err = s.Issue(ctx, product(c, "chk_"+c, 1), p.ID)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var all []issuing.Product
		after := ""
		for range 10 {
			page, err := s.Holdings(ctx, after, 20)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if len(page) < 20 {
				break
			}
			after = page[len(page)-1].CustomerID
		}
		if got, want := len(all), 50; got != want {
			t.Fatalf("holdings = %d, want %d", got, want)
		}
	})
}
