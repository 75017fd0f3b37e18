package e2e_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
)

// TestRetriesAfterARelease replays, black box on real processes, the
// findings of "Exclusivity across systems": every retry below used to
// succeed, and the last two ended with one customer holding a card and a
// loan.
func TestRetriesAfterARelease(t *testing.T) {
	sys := startSystem(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	card := newClient(t, sys.arbiter.URL, cardKey, "card-service")
	wantArbiter := func(t *testing.T, err error, want client.Reason) {
		t.Helper()
		if !errors.Is(err, &client.Error{Reason: want}) {
			t.Fatalf("err = %v, want %s", err, want)
		}
	}
	wantService := func(t *testing.T, a answer, status int, reason string) {
		t.Helper()
		if a.Status != status || a.str("reason") != reason {
			t.Fatalf("answer = %v, want %d %s", a, status, reason)
		}
	}
	loanAfter := func(t *testing.T, customer string) {
		t.Helper()
		// The customer holds nothing anywhere, so a loan is fine, and then
		// the card stays refused.
		if a := sys.loan.applyOnline(ctx, customer); a.Status != http.StatusCreated {
			t.Fatalf("online loan = %v, want 201", a)
		}
		if rows := readDB(t, sys.card.db, "products"); rows[customer].CheckID != "" {
			t.Fatalf("card.db holds %s for %s next to the loan", rows[customer].CheckID, customer)
		}
	}

	t.Run("arbiter: a released grant is never replayed", func(t *testing.T) {
		ch, err := sys.branch.Check(ctx, client.CheckRequest{CustomerID: "RT-1", Product: "credit_card"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := card.Redeem(ctx, client.Redemption{CustomerID: "RT-1", Product: "credit_card", OTP: ch.OTP}); err != nil {
			t.Fatal(err)
		}
		if err := card.Release(ctx, "RT-1", "credit_card", ch.ID); err != nil {
			t.Fatal(err)
		}
		_, err = card.Redeem(ctx, client.Redemption{Token: ch.Token})
		wantArbiter(t, err, client.ReasonGrantReleased)
		_, err = card.Redeem(ctx, client.Redemption{CustomerID: "RT-1", Product: "credit_card", OTP: ch.OTP})
		wantArbiter(t, err, client.ReasonGrantReleased)
		_, err = card.Redeem(ctx, client.Redemption{CustomerID: "RT-1", Product: "credit_card", OTP: "000000"})
		wantArbiter(t, err, client.ReasonGrantReleased)
	})

	t.Run("a closed card is not issued again from its token", func(t *testing.T) {
		ch, err := sys.branch.Check(ctx, client.CheckRequest{CustomerID: "RT-2", Product: "credit_card"})
		if err != nil {
			t.Fatal(err)
		}
		app := map[string]string{"customer_id": "RT-2", "token": ch.Token}
		wantService(t, sys.card.apply(ctx, app), http.StatusCreated, "")
		if a := call(ctx, http.MethodDelete, sys.card.proc.URL+"/v1/products/RT-2", nil); a.Status != http.StatusOK {
			t.Fatalf("close = %v", a)
		}
		wantService(t, sys.card.apply(ctx, app), http.StatusConflict, "application_closed")
		loanAfter(t, "RT-2")
	})

	t.Run("a compensated card is not issued by the client's retry", func(t *testing.T) {
		broken := sys.startService(t, "credit_card", "card-service", cardKey, "card.db", "fail-insert")
		ch, err := sys.branch.Check(ctx, client.CheckRequest{CustomerID: "RT-3", Product: "credit_card"})
		if err != nil {
			t.Fatal(err)
		}
		app := map[string]string{"customer_id": "RT-3", "token": ch.Token}
		if a := broken.apply(ctx, app); a.Status != http.StatusInternalServerError || a.Body["compensated"] != true {
			t.Fatalf("apply on the failing instance = %v, want 500 compensated", a)
		}
		wantService(t, sys.card.apply(ctx, app), http.StatusConflict, "compensated")
		otp := map[string]string{"customer_id": "RT-3", "otp": "000000"}
		wantService(t, sys.card.apply(ctx, otp), http.StatusGone, "grant_released")
		loanAfter(t, "RT-3")
	})
}
