package issuing_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
)

// ledger is an Arbiter whose answers the test sets: the customer arbiter
// shows, and what a redemption returns. It records cancels and releases.
type ledger struct {
	mu        sync.Mutex
	customer  client.Customer
	redeem    func() (*client.Grant, error)
	cancelled []string
	releases  []string
}

func (f *ledger) set(grants []client.Grant, hold *client.Hold) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.customer.Products, f.customer.Hold = grants, hold
}

func (f *ledger) Customer(_ context.Context, id string) (*client.Customer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cu := f.customer
	cu.ID = id
	cu.Products = slices.Clone(cu.Products)
	return &cu, nil
}

func (f *ledger) Redeem(context.Context, client.Redemption) (*client.Grant, error) {
	return f.redeem()
}

func (f *ledger) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *ledger) Release(_ context.Context, _, _, checkID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, checkID)
	return nil
}

func (f *ledger) Check(context.Context, client.CheckRequest) (*client.Check, error) {
	return nil, errors.New("ledger: no checks")
}

func (f *ledger) VerifyToken(context.Context, string) (client.Claims, error) {
	return client.Claims{}, client.ErrTokenInvalid
}

// beginOTP records the pending row an OTP application writes before it
// calls arbiter (its check is not known yet).
func beginOTP(tb testing.TB, st issuing.Store, customer string) {
	tb.Helper()
	if _, err := st.Begin(context.Background(), issuing.Pending{Action: issuing.ActionIssue, CustomerID: customer, Channel: issuing.ChannelOTP, CreatedAt: t0}); err != nil {
		tb.Fatal(err)
	}
}

// TestReconcileIssuesOnlyItsOwnGrant: a grant of the same product redeemed
// by another client (a second card issuer) is no evidence that this
// service's application was granted; issuing on it would leave this
// product without a grant of its own at arbiter.
func TestReconcileIssuesOnlyItsOwnGrant(t *testing.T) {
	ctx := context.Background()
	arb := &ledger{}
	arb.set([]client.Grant{{CheckID: "chk_o_C1", CustomerID: "C1", Product: "credit_card", Fence: 3, RedeemedBy: "partner-card-service"}}, nil)
	svc, st := newTokenService(t, arb)
	beginOTP(t, st, "C1")
	r, err := svc.Reconcile(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r, (issuing.Report{Dropped: 1}); got != want {
		t.Fatalf("Reconcile = %+v, want %+v", got, want)
	}
	wantNothingIssued(t, st, "C1")
}

// TestReconcileKeepsAnOTPApplicationWhileAHoldLives: an OTP application's
// check is unknown, so any live hold of the product may be the one its
// redemption (still in flight) lands on. The row stays — and the hold,
// perhaps another channel's, is not cancelled — until the hold ends; the
// late grant is then issued instead of being left without a product.
func TestReconcileKeepsAnOTPApplicationWhileAHoldLives(t *testing.T) {
	ctx := context.Background()
	arb := &ledger{}
	arb.set(nil, &client.Hold{CheckID: "chk_h_C1", Product: "credit_card"})
	svc, st := newTokenService(t, arb)
	beginOTP(t, st, "C1")
	if r, err := svc.Reconcile(ctx, 0); err != nil || r != (issuing.Report{Left: 1}) {
		t.Fatalf("Reconcile while the hold lives = %+v %v, want the row left", r, err)
	}
	if len(arb.cancelled) != 0 {
		t.Fatalf("cancelled %v: a hold not known to be this application's was cancelled", arb.cancelled)
	}
	// The redemption lands late: the hold became this service's grant.
	arb.set([]client.Grant{{CheckID: "chk_h_C1", CustomerID: "C1", Product: "credit_card", Fence: 4, RedeemedBy: "card-service"}}, nil)
	if r, err := svc.Reconcile(ctx, 0); err != nil || r != (issuing.Report{Issued: 1}) {
		t.Fatalf("Reconcile after the late grant = %+v %v, want it issued", r, err)
	}
	if p, err := st.Product(ctx, "C1"); err != nil || p.CheckID != "chk_h_C1" {
		t.Fatalf("Product = %+v %v, want the product of chk_h_C1", p, err)
	}
}

// TestRefusalOfARetryKeepsThePendingRow: a refusal that answers a retry
// (the first try's answer was lost) does not prove the first try did not
// redeem, so the pending row stays for reconciliation; a refusal of a first
// try is definite and the row goes.
func TestRefusalOfARetryKeepsThePendingRow(t *testing.T) {
	for _, retried := range []bool{true, false} {
		arb := &ledger{redeem: func() (*client.Grant, error) {
			return nil, &client.Error{Op: "redeem", Status: 410, Reason: client.ReasonHoldExpired, Retried: retried}
		}}
		svc, st := newTokenService(t, arb)
		_, _, err := svc.Apply(context.Background(), issuing.Application{CustomerID: "C1", OTP: "123456"})
		wantError(t, err, string(client.ReasonHoldExpired))
		ps, err := st.Pendings(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(ps), map[bool]int{true: 1, false: 0}[retried]; got != want {
			t.Fatalf("Retried %v: %d pending rows, want %d", retried, got, want)
		}
	}
}

// TestCompensateFindsTheProductIssued: two processes share one database.
// While one fails to insert after arbiter granted, the other reconciles the
// same pending row and issues the product; the first one's compensation
// then finds the check issued (ErrIssued) and must keep the grant: the
// applicant gets the issued product, and arbiter is asked for no release.
func TestCompensateFindsTheProductIssued(t *testing.T) {
	ctx := context.Background()
	g := client.Grant{CheckID: "chk_a_C1", CustomerID: "C1", Product: "credit_card", Fence: 5, GrantedAt: t0, RedeemedBy: "card-service"}
	arb := &ledger{}
	arb.redeem = func() (*client.Grant, error) {
		arb.set([]client.Grant{g}, nil)
		return &g, nil
	}
	first, st := newTokenService(t, arb)
	second := &issuing.Service{Product: first.Product, ClientID: first.ClientID, Arbiter: arb, Store: st, Now: first.Now}
	first.Fault = func(point string) error {
		if point != issuing.FaultInsert {
			return nil
		}
		if r, err := second.Reconcile(ctx, 0); err != nil || r != (issuing.Report{Issued: 1}) {
			t.Errorf("the other process's Reconcile = %+v %v, want it to issue", r, err)
		}
		return errors.New("disk full")
	}
	p, replayed, err := first.Apply(ctx, issuing.Application{CustomerID: "C1", OTP: "123456"})
	if err != nil || !replayed || p.CheckID != g.CheckID {
		t.Fatalf("Apply = %+v, %v, %v; want the product the other process issued", p, replayed, err)
	}
	if len(arb.releases) != 0 {
		t.Fatalf("released %v: the grant of an issued product was released", arb.releases)
	}
	if got, err := st.Product(ctx, "C1"); err != nil || got.CheckID != g.CheckID {
		t.Fatalf("Product = %+v %v, want it issued from %s", got, err, g.CheckID)
	}
	wantPendings(t, st)
	// The store's own guard, directly: an issued check is not compensated.
	_, err = st.Compensate(ctx, issuing.Compensation{CheckID: g.CheckID, CustomerID: "C1", Product: "credit_card", Fence: 5, Reason: issuing.ReasonIssueFailed, At: t0}, 0)
	if !errors.Is(err, issuing.ErrIssued) {
		t.Fatalf("Compensate of an issued check = %v, want ErrIssued", err)
	}
}

// TestOTPAttemptsNameTheirCaller: every code tried is attributed to the
// authenticated client that sent it, and the code itself is not logged.
func TestOTPAttemptsNameTheirCaller(t *testing.T) {
	arb := &ledger{redeem: func() (*client.Grant, error) {
		return nil, &client.Error{Op: "redeem", Status: 422, Reason: client.ReasonOTPInvalid, AttemptsLeft: 4}
	}}
	svc, _ := newTokenService(t, arb)
	var buf bytes.Buffer
	svc.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	_, _, err := svc.Apply(context.Background(), issuing.Application{CustomerID: "C1", OTP: "918273", Caller: "branch-portal"})
	wantError(t, err, string(client.ReasonOTPInvalid))
	log := buf.String()
	if !strings.Contains(log, `"msg":"otp attempt"`) || !strings.Contains(log, `"caller":"branch-portal"`) || !strings.Contains(log, `"outcome":"otp_invalid"`) {
		t.Fatalf("log has no otp attempt by branch-portal with its outcome:\n%s", log)
	}
	if strings.Contains(log, "918273") {
		t.Fatalf("the OTP was logged:\n%s", log)
	}
}
