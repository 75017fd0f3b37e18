package issuing_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

// fakeArbiter grants every redemption and records releases and cancels;
// failRelease makes Release fail as if arbiter were unreachable.
type fakeArbiter struct {
	mu          sync.Mutex
	grants      map[string]client.Grant // by customer
	hold        *client.Hold
	released    []string
	cancelled   []string
	failRelease bool
}

var errDown = errors.New("connection refused")

func (f *fakeArbiter) Check(ctx context.Context, r client.CheckRequest) (*client.Check, error) {
	return nil, errDown
}

func (f *fakeArbiter) Cancel(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	if f.hold != nil && f.hold.CheckID == id {
		f.hold = nil
	}
	return nil
}

func (f *fakeArbiter) Redeem(ctx context.Context, r client.Redemption) (*client.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := client.Grant{CheckID: "chk_x_" + r.CustomerID, CustomerID: r.CustomerID, Product: r.Product, Fence: 7, RedeemedBy: "card-service"}
	f.grants[r.CustomerID] = g
	return &g, nil
}

func (f *fakeArbiter) Release(ctx context.Context, customer, product, checkID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failRelease {
		return errDown
	}
	if _, ok := f.grants[customer]; !ok {
		return client.ErrGrantNotFound
	}
	delete(f.grants, customer)
	f.released = append(f.released, customer)
	return nil
}

func (f *fakeArbiter) Customer(ctx context.Context, customer string) (*client.Customer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cu := &client.Customer{ID: customer, Hold: f.hold}
	if g, ok := f.grants[customer]; ok {
		cu.Products = []client.Grant{g}
	}
	return cu, nil
}

func (f *fakeArbiter) VerifyToken(ctx context.Context, token string) (client.Claims, error) {
	return client.Claims{}, client.ErrTokenInvalid
}

func newService(tb testing.TB, arb issuing.Arbiter) (*issuing.Service, *sqlitestore.Store) {
	tb.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "svc.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return &issuing.Service{Product: "credit_card", ClientID: "card-service", Arbiter: arb, Store: st}, st
}

// diskFull is a Service.Fault that fails every local insert.
func diskFull(point string) error {
	if point == issuing.FaultInsert {
		return errors.New("disk full")
	}
	return nil
}

func TestCompensation(t *testing.T) {
	ctx := context.Background()
	broken := diskFull

	t.Run("a failed insert releases the grant", func(t *testing.T) {
		arb := &fakeArbiter{grants: map[string]client.Grant{}}
		svc, st := newService(t, arb)
		svc.Fault = broken
		_, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C1", OTP: "123456"})
		var e *issuing.Error
		if !errors.As(err, &e) || !e.Compensated || e.Reason != issuing.ReasonIssueFailed {
			t.Fatalf("Apply = %v, want compensated issue_failed", err)
		}
		if got, want := len(arb.released), 1; got != want {
			t.Fatalf("releases = %d, want %d", got, want)
		}
		if ps, _ := st.Pendings(ctx); len(ps) != 0 {
			t.Fatalf("pending = %v, want none", ps)
		}
	})

	t.Run("a release that fails stays pending until reconciled", func(t *testing.T) {
		arb := &fakeArbiter{grants: map[string]client.Grant{}, failRelease: true}
		svc, st := newService(t, arb)
		svc.Fault = broken
		_, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C1", OTP: "123456"})
		var e *issuing.Error
		if !errors.As(err, &e) || e.Compensated || !e.Pending {
			t.Fatalf("Apply = %v, want pending, not compensated", err)
		}
		// Arbiter is back: reconciliation finishes the compensation (the
		// client was told the grant would be released), it does not issue.
		arb.failRelease = false
		svc.Fault = nil
		r, err := svc.Reconcile(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r, (issuing.Report{Released: 1}); got != want {
			t.Fatalf("Reconcile = %+v, want %+v", got, want)
		}
		if got, want := arb.released, []string{"C1"}; !slices.Equal(got, want) {
			t.Fatalf("released = %v, want %v", got, want)
		}
		if p, err := st.Product(ctx, "C1"); !errors.Is(err, issuing.ErrNotFound) {
			t.Fatalf("Product = %+v %v, want none: the application was compensated", p, err)
		}
	})

	t.Run("an application arbiter never granted is dropped and its hold cancelled", func(t *testing.T) {
		arb := &fakeArbiter{grants: map[string]client.Grant{}, hold: &client.Hold{CheckID: "chk_h_C2", Product: "credit_card"}}
		svc, st := newService(t, arb)
		if _, err := st.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C2", CheckID: "chk_h_C2", Fence: 2, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if r, _ := svc.Reconcile(ctx, time.Hour); r.Skipped != 1 {
			t.Fatalf("Reconcile(minAge 1h) = %+v, want the young row skipped", r)
		}
		// While its hold lives, a late redemption could still grant it:
		// the hold is cancelled first, and the row kept for the next pass.
		r, err := svc.Reconcile(ctx, 0)
		if err != nil || r.Left != 1 || r.Dropped != 0 {
			t.Fatalf("Reconcile = %+v %v, want the row left while its hold was live", r, err)
		}
		if got, want := arb.cancelled, []string{"chk_h_C2"}; len(got) != 1 || got[0] != want[0] {
			t.Fatalf("cancelled = %v, want %v", got, want)
		}
		r, err = svc.Reconcile(ctx, 0)
		if err != nil || r.Dropped != 1 {
			t.Fatalf("Reconcile = %+v %v, want 1 dropped once no hold can be redeemed", r, err)
		}
	})
}
