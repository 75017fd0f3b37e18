package sqlitestore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
			all = append(all, page.Products...)
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if got, want := len(all), 50; got != want {
			t.Fatalf("holdings = %d, want %d", got, want)
		}
	})
}

func issue(tb testing.TB, s *sqlitestore.Store, customer string) {
	tb.Helper()
	ctx := context.Background()
	p, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: customer, CheckID: "chk_" + customer, Fence: 1})
	if err == nil {
		_, _, err = s.Issue(ctx, product(customer, "chk_"+customer, 1), p.ID)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// digestOf is docs/reconciliation.md's digest, written from its words.
func digestOf(ids ...string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id + "\n"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// TestHoldingsProof: every page carries the proof of the range it covers,
// docs/reconciliation.md's worked example among them, and a page matches its proof even
// while customers are issued behind and ahead of the cursor.
func TestHoldingsProof(t *testing.T) {
	ctx := context.Background()
	t.Run("the documented example", func(t *testing.T) {
		s := open(t)
		for _, c := range []string{"C-3", "C-1", "C-2"} {
			issue(t, s, c)
		}
		doc, err := os.ReadFile("../../docs/reconciliation.md")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			after, next string
			ids         []string
		}{{"", "C-2", []string{"C-1", "C-2"}}, {"C-2", "", []string{"C-3"}}} {
			page, err := s.Holdings(ctx, tc.after, 2)
			if err != nil {
				t.Fatal(err)
			}
			want := issuing.HoldingsProof{Customers: len(tc.ids), Holdings: len(tc.ids), Digest: digestOf(tc.ids...)}
			if page.Next != tc.next || page.Proof != want {
				t.Errorf("page after %q: next %q, proof %+v; want %q, %+v", tc.after, page.Next, page.Proof, tc.next, want)
			}
			if !strings.Contains(string(doc), want.Digest) {
				t.Errorf("docs/reconciliation.md's worked example lacks %s", want.Digest)
			}
		}
	})
	t.Run("under pagination while customers are issued", func(t *testing.T) {
		s := open(t)
		for i := range 30 {
			issue(t, s, fmt.Sprintf("C-%02d", 2*i))
		}
		after := ""
		for pages := 0; ; pages++ {
			page, err := s.Holdings(ctx, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range page.Products {
				ids = append(ids, p.CustomerID)
			}
			if want := (issuing.HoldingsProof{Customers: len(ids), Holdings: len(ids), Digest: digestOf(ids...)}); page.Proof != want {
				t.Fatalf("page after %q lists %v, its proof %+v, want %+v", after, ids, page.Proof, want)
			}
			if page.Next == "" {
				break
			}
			if page.Next != ids[len(ids)-1] {
				t.Fatalf("next %q, want the page's last customer %s", page.Next, ids[len(ids)-1])
			}
			issue(t, s, fmt.Sprintf("C-%02d", 2*pages+1))  // behind the cursor (or just ahead)
			issue(t, s, fmt.Sprintf("C-%02d", 59-2*pages)) // ahead of it
			after = page.Next
		}
	})
}
