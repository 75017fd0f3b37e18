package issuing_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

// ledgerArbiter is a fake arbiter with arbiter's redemption semantics for
// one product: tokens are "tok:<check id>:<customer>", a redeemed check
// replays to its redeemer while its grant lives and is grant_released
// after. The old service code issued again from such a replay.
type ledgerArbiter struct {
	mu       sync.Mutex
	grants   map[string]client.Grant // by check id
	redeemed map[string]bool         // check ids ever redeemed
	redeems  int                     // Redeem calls
	released []string                // check ids
}

func newLedgerArbiter() *ledgerArbiter {
	return &ledgerArbiter{grants: map[string]client.Grant{}, redeemed: map[string]bool{}}
}

func (f *ledgerArbiter) Check(context.Context, client.CheckRequest) (*client.Check, error) {
	return nil, errDown
}

func (f *ledgerArbiter) Cancel(context.Context, string) error { return nil }

func (f *ledgerArbiter) Redeem(_ context.Context, r client.Redemption) (*client.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redeems++
	id := strings.Split(r.Token, ":")[1]
	if g, ok := f.grants[id]; ok {
		g.Replayed = true
		return &g, nil
	}
	if f.redeemed[id] {
		return nil, &client.Error{Status: 410, Reason: client.ReasonGrantReleased}
	}
	f.redeemed[id] = true
	g := client.Grant{CheckID: id, CustomerID: strings.Split(r.Token, ":")[2], Product: "credit_card", Fence: int64(len(f.redeemed)), RedeemedBy: "card-service"}
	f.grants[id] = g
	return &g, nil
}

func (f *ledgerArbiter) Release(_ context.Context, customer, product, checkID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.grants[checkID]; !ok {
		return client.ErrGrantNotFound
	}
	delete(f.grants, checkID)
	f.released = append(f.released, checkID)
	return nil
}

func (f *ledgerArbiter) Customer(_ context.Context, customer string) (*client.Customer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cu := &client.Customer{ID: customer}
	for _, g := range f.grants {
		if g.CustomerID == customer {
			cu.Products = append(cu.Products, g)
		}
	}
	return cu, nil
}

func (f *ledgerArbiter) VerifyToken(_ context.Context, token string) (client.Claims, error) {
	parts := strings.Split(token, ":")
	if len(parts) != 3 || parts[0] != "tok" {
		return client.Claims{}, client.ErrTokenInvalid
	}
	return client.Claims{CheckID: parts[1], CustomerID: parts[2], Product: "credit_card", Fence: 1}, nil
}

// TestRetiredApplications: a client's retry of a closed or compensated
// application is refused with its own reason, before arbiter is asked, and
// no product is issued.
func TestRetiredApplications(t *testing.T) {
	ctx := context.Background()
	wantReason := func(t *testing.T, err error, want string) {
		t.Helper()
		if got := issuing.ReasonOf(err); got != want {
			t.Fatalf("Apply = %v, want reason %s", err, want)
		}
	}

	t.Run("closed", func(t *testing.T) {
		arb := newLedgerArbiter()
		svc, st := newService(t, arb)
		app := issuing.Application{CustomerID: "C1", Token: "tok:chk_a_C1:C1"}
		if _, replayed, err := svc.Apply(ctx, app); err != nil || replayed {
			t.Fatalf("Apply = %v, replayed %v", err, replayed)
		}
		if c, err := svc.Close(ctx, "C1"); err != nil || !c.Released {
			t.Fatalf("Close = %+v, %v", c, err)
		}
		_, _, err := svc.Apply(ctx, app)
		wantReason(t, err, issuing.ReasonApplicationClosed)
		if got, want := arb.redeems, 1; got != want {
			t.Fatalf("redeems = %d, want %d: a retired check must not reach arbiter", got, want)
		}
		if _, err := st.Product(ctx, "C1"); !errors.Is(err, issuing.ErrNotFound) {
			t.Fatalf("Product = %v, want none", err)
		}
	})

	t.Run("closed, its release still pending", func(t *testing.T) {
		// Arbiter still shows the grant (the release has not reached it
		// yet) and would replay it to an OTP retry: Issue refuses.
		arb := newLedgerArbiter()
		svc, st := newService(t, arb)
		app := issuing.Application{CustomerID: "C1", Token: "tok:chk_b_C1:C1"}
		if _, _, err := svc.Apply(ctx, app); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.CloseProduct(ctx, "C1", time.Now()); err != nil { // closed here, arbiter not told yet
			t.Fatal(err)
		}
		p, err := st.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1", Channel: issuing.ChannelOTP})
		if err != nil {
			t.Fatal(err)
		}
		g := arb.grants["chk_b_C1"]
		if _, _, err := st.Issue(ctx, issuing.Product{CustomerID: "C1", Product: "credit_card", CheckID: g.CheckID, Fence: g.Fence, Channel: issuing.ChannelOTP}, p.ID); !errors.Is(err, issuing.ErrClosed) {
			t.Fatalf("Issue = %v, want ErrClosed", err)
		}
		r, err := svc.Reconcile(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Issued != 0 || r.Released != 1 {
			t.Fatalf("Reconcile = %+v, want the close's release finished and nothing issued", r)
		}
	})

	t.Run("compensated", func(t *testing.T) {
		arb := newLedgerArbiter()
		svc, st := newService(t, arb)
		svc.Fault = diskFull
		app := issuing.Application{CustomerID: "C2", Token: "tok:chk_c_C2:C2"}
		var e *issuing.Error
		if _, _, err := svc.Apply(ctx, app); !errors.As(err, &e) || !e.Compensated {
			t.Fatalf("Apply = %v, want compensated", err)
		}
		svc.Fault = nil // the disk is back; the client retries
		_, _, err := svc.Apply(ctx, app)
		wantReason(t, err, issuing.ReasonCompensated)
		if _, err := st.Product(ctx, "C2"); !errors.Is(err, issuing.ErrNotFound) {
			t.Fatalf("Product = %v, want none", err)
		}
		if got, want := arb.released, []string{"chk_c_C2"}; len(got) != 1 || got[0] != want[0] {
			t.Fatalf("released = %v, want %v", got, want)
		}
		// A new application (a new check) is issued normally.
		if _, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C2", Token: "tok:chk_d_C2:C2"}); err != nil {
			t.Fatalf("new application: %v", err)
		}
	})
}

// lateArbiter is a fakeArbiter whose redemption lands while reconciliation
// tries to cancel its hold: Cancel fails with check_not_held and the grant
// appears, as with a request still in flight or a script Redis ran late.
type lateArbiter struct{ *fakeArbiter }

func (f lateArbiter) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = nil
	f.grants["C3"] = client.Grant{CheckID: id, CustomerID: "C3", Product: "credit_card", Fence: 2, RedeemedBy: "card-service"}
	return &client.Error{Status: 409, Reason: client.ReasonCheckNotHeld}
}

// TestReconcileNeverDropsARedeemableApplication: an unfinished application
// whose hold is live is not dropped in the pass that cancels the hold; when
// the cancel loses to the redemption, the next pass issues the product.
func TestReconcileNeverDropsARedeemableApplication(t *testing.T) {
	ctx := context.Background()
	arb := lateArbiter{&fakeArbiter{grants: map[string]client.Grant{}, hold: &client.Hold{CheckID: "chk_l_C3", Product: "credit_card"}}}
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "svc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := &issuing.Service{Product: "credit_card", ClientID: "card-service", Arbiter: arb, Store: st}
	if _, err := st.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C3", CheckID: "chk_l_C3", Fence: 2, Channel: issuing.ChannelToken}); err != nil {
		t.Fatal(err)
	}
	if r, err := svc.Reconcile(ctx, 0); err != nil || r != (issuing.Report{Left: 1}) {
		t.Fatalf("first pass = %+v %v, want the row left", r, err)
	}
	if r, err := svc.Reconcile(ctx, 0); err != nil || r != (issuing.Report{Issued: 1}) {
		t.Fatalf("second pass = %+v %v, want the late grant issued", r, err)
	}
	if p, err := st.Product(ctx, "C3"); err != nil || p.CheckID != "chk_l_C3" {
		t.Fatalf("Product = %+v %v, want the product of chk_l_C3", p, err)
	}
}
