package issuing_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
)

func TestHoldEnded(t *testing.T) {
	ctx := context.Background()
	arb := &fakeArbiter{grants: map[string]client.Grant{}}
	svc, st := newService(t, arb)
	svc.Now = func() time.Time { return time.Now() }
	for _, p := range []issuing.Pending{
		{Action: issuing.ActionIssue, CustomerID: "C-1", CheckID: "chk_1", Fence: 1, Channel: issuing.ChannelToken},
		{Action: issuing.ActionIssue, CustomerID: "C-2", CheckID: "chk_2", Fence: 1, Channel: issuing.ChannelToken},
	} {
		if _, err := st.Begin(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("drops a fresh application whose hold ended", func(t *testing.T) {
		r, err := svc.HoldEnded(ctx, "c-1", "chk_1")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r, (issuing.Report{Dropped: 1}); got != want {
			t.Fatalf("HoldEnded = %+v, want %+v", got, want)
		}
		wantPendings(t, st, "chk_2")
	})
	t.Run("a repeat, an unknown check, another customer change nothing", func(t *testing.T) {
		for _, c := range [][2]string{{"C-1", "chk_1"}, {"C-1", "chk_9"}, {"C-1", "chk_2"}, {"C-2", ""}} {
			if r, err := svc.HoldEnded(ctx, c[0], c[1]); err != nil || r != (issuing.Report{}) {
				t.Fatalf("HoldEnded(%s, %s) = %+v, %v; want nothing done", c[0], c[1], r, err)
			}
		}
		wantPendings(t, st, "chk_2")
	})
	t.Run("a grant found is issued, as Reconcile would", func(t *testing.T) {
		arb.grants["C-2"] = client.Grant{CheckID: "chk_2", CustomerID: "C-2", Product: "credit_card", Fence: 1, RedeemedBy: "card-service"}
		r, err := svc.HoldEnded(ctx, "C-2", "chk_2")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r, (issuing.Report{Issued: 1}); got != want {
			t.Fatalf("HoldEnded = %+v, want %+v", got, want)
		}
		wantPendings(t, st)
	})
}
