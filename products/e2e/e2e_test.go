package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/tokens"
)

const customers = 100

func TestProductServices(t *testing.T) {
	sys := startSystem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("simultaneous applications end in exactly one product", func(t *testing.T) {
		testSimultaneous(ctx, t, sys)
	})
	t.Run("stale and forged tokens are refused by the product service", func(t *testing.T) {
		testStaleToken(ctx, t, sys)
	})
	t.Run("a crash between redeem and insert is reconciled on restart", func(t *testing.T) {
		testCrash(ctx, t, sys)
	})
	t.Run("a failed insert is compensated at arbiter", func(t *testing.T) {
		testCompensation(ctx, t, sys)
	})
	t.Run("closing a product frees the customer for the other", func(t *testing.T) {
		testClose(ctx, t, sys)
	})
}

// flow is how one application is made.
type flow int

const (
	viaOTP    flow = iota // a branch checker gets the OTP; the customer's code is posted
	viaOnline             // the product service checks, underwrites and redeems itself
)

func (f flow) String() string { return [...]string{"otp", "online"}[f] }

// apply makes one application through f and returns the service's answer;
// for the OTP flow a refused check is the answer (status from arbiter).
func apply(ctx context.Context, sys *system, svc *service, f flow, customer string) answer {
	if f == viaOnline {
		return svc.applyOnline(ctx, customer)
	}
	ch, err := sys.branch.Check(ctx, client.CheckRequest{CustomerID: customer, Product: svc.product, AgentID: "agent-e2e"})
	var e *client.Error
	if errors.As(err, &e) {
		return answer{Status: e.Status, Body: map[string]any{"reason": string(e.Reason)}}
	}
	if err != nil {
		return answer{Body: map[string]any{"error": err.Error()}}
	}
	return svc.apply(ctx, map[string]string{"customer_id": customer, "otp": ch.OTP})
}

func testSimultaneous(ctx context.Context, t *testing.T, sys *system) {
	// Every pair of flows, card first and loan second.
	pairs := [][2]flow{{viaOTP, viaOTP}, {viaOnline, viaOnline}, {viaOTP, viaOnline}, {viaOnline, viaOTP}}
	type outcome struct{ card, loan answer }
	results := make([]outcome, customers)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			customer := fmt.Sprintf("SIM-%03d", i)
			p := pairs[i%len(pairs)]
			go1 := make(chan struct{})
			var inner sync.WaitGroup
			inner.Add(2)
			go func() { defer inner.Done(); <-go1; results[i].card = apply(ctx, sys, sys.card, p[0], customer) }()
			go func() { defer inner.Done(); <-go1; results[i].loan = apply(ctx, sys, sys.loan, p[1], customer) }()
			close(go1) // both applications leave at the same moment
			inner.Wait()
		}()
	}
	wg.Wait()
	t.Logf("%d customers, 2 simultaneous applications each: %v", customers, time.Since(start))

	cardDB, loanDB := readDB(t, sys.card.db, "products"), readDB(t, sys.loan.db, "products")
	cardAPI, loanAPI := sys.card.holdings(t), sys.loan.holdings(t)
	wins := map[string]int{}
	for i, r := range results {
		customer := fmt.Sprintf("SIM-%03d", i)
		p := pairs[i%len(pairs)]
		cardWon, loanWon := r.card.Status == http.StatusCreated, r.loan.Status == http.StatusCreated
		if cardWon == loanWon {
			t.Errorf("%s (card %v, loan %v): card answered %v, loan answered %v; want exactly one 201", customer, p[0], p[1], r.card, r.loan)
			continue
		}
		loser, winner, winDB, loseDB, product := r.loan, r.card, cardDB, loanDB, "credit_card"
		if loanWon {
			loser, winner, winDB, loseDB, product = r.card, r.loan, loanDB, cardDB, "personal_loan"
		}
		wins[product]++
		if got := loser.str("reason"); got != "hold_exists" && got != "conflicting_product" {
			t.Errorf("%s: loser's reason = %q (%v), want hold_exists or conflicting_product", customer, got, loser)
		}
		// The three views: the winner's database, the loser's, arbiter's ledger.
		got, ok := winDB[customer]
		if !ok || got.CheckID != winner.str("check_id") {
			t.Errorf("%s: winner's database row = %+v (present %v), want check %s", customer, got, ok, winner.str("check_id"))
		}
		if _, ok := loseDB[customer]; ok {
			t.Errorf("%s: the loser's database also holds a product", customer)
		}
		cu, err := sys.ledger.Customer(ctx, customer)
		if err != nil {
			t.Fatal(err)
		}
		if len(cu.Products) != 1 {
			t.Errorf("%s: arbiter's ledger holds %+v, want exactly one product", customer, cu.Products)
			continue
		}
		g := cu.Products[0]
		if g.Product != product || g.CheckID != got.CheckID || g.Fence != got.Fence {
			t.Errorf("%s: arbiter's grant %+v disagrees with the database row %+v of %s", customer, g, got, product)
		}
		if cu.Hold != nil {
			t.Errorf("%s: a hold is left at arbiter: %+v", customer, cu.Hold)
		}
	}
	if got, want := len(cardDB)+len(loanDB), customers; got != want {
		t.Errorf("products in both databases = %d, want %d", got, want)
	}
	if got, want := fmt.Sprint(cardAPI), fmt.Sprint(cardDB); got != want {
		t.Errorf("card GET /v1/holdings disagrees with its database:\n%s\n%s", got, want)
	}
	if got, want := fmt.Sprint(loanAPI), fmt.Sprint(loanDB); got != want {
		t.Errorf("loan GET /v1/holdings disagrees with its database:\n%s\n%s", got, want)
	}
	t.Logf("winners: %v", wins)
}

func testStaleToken(ctx context.Context, t *testing.T, sys *system) {
	const customer = "STALE-1"
	cards := newClient(t, sys.arbiter.URL, cardKey, "card-service")
	old, err := cards.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cards.Cancel(ctx, old.ID); err != nil { // its placer: the branch portal may cancel only its own checks
		t.Fatal(err)
	}
	fresh, err := cards.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Fence <= old.Fence {
		t.Fatalf("fences %d then %d: want increasing", old.Fence, fresh.Fence)
	}
	if a := sys.card.apply(ctx, map[string]string{"customer_id": customer, "token": fresh.Token}); a.Status != http.StatusCreated {
		t.Fatalf("fresh token: %v, want 201", a)
	}
	// A retry of the same application returns the same product.
	if a := sys.card.apply(ctx, map[string]string{"customer_id": customer, "token": fresh.Token}); a.Status != http.StatusOK || a.str("check_id") != fresh.ID {
		t.Fatalf("retry: %v, want 200 with check %s", a, fresh.ID)
	}
	a := sys.card.apply(ctx, map[string]string{"customer_id": customer, "token": old.Token})
	if got, want := a.str("reason"), "stale_fence"; a.Status != http.StatusConflict || got != want {
		t.Fatalf("stale token: %v, want 409 %s", a, want)
	}
	if got := readDB(t, sys.card.db, "fences")[customer]; got.Fence != fresh.Fence {
		t.Fatalf("recorded fence = %d, want %d", got.Fence, fresh.Fence)
	}

	// A token signed by another key never reaches arbiter.
	forger, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := tokens.NewIssuer(tokens.IssuerConfig{Key: forger})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := iss.Sign(tokens.Claims{CheckID: "chk_aaaaaaaaaaaaaaaaaaaa_FORGED-1", CustomerID: "FORGED-1", Product: "credit_card",
		Fence: 1 << 40, Audience: []string{"card-service"}, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	a = sys.card.apply(ctx, map[string]string{"customer_id": "FORGED-1", "token": forged})
	if got, want := a.str("reason"), "token_invalid"; a.Status != http.StatusForbidden || got != want {
		t.Fatalf("forged token: %v, want 403 %s", a, want)
	}
	// A card token is not for the loan service.
	other, err := sys.branch.Check(ctx, client.CheckRequest{CustomerID: "STALE-2", Product: "credit_card"})
	if err != nil {
		t.Fatal(err)
	}
	if a := sys.loan.apply(ctx, map[string]string{"customer_id": "STALE-2", "token": other.Token}); a.Status != http.StatusForbidden {
		t.Fatalf("card token at the loan service: %v, want 403", a)
	}
}

func testCrash(ctx context.Context, t *testing.T, sys *system) {
	const db = "card-crash.db"
	crashes := []struct {
		customer string
		flow     flow
	}{{"CRASH-1", viaOnline}, {"CRASH-2", viaOTP}}
	for _, c := range crashes {
		svc := sys.startService(t, "credit_card", "card-service", cardKey, db, "crash-after-redeem")
		a := apply(ctx, sys, svc, c.flow, c.customer)
		if a.Status != 0 {
			t.Fatalf("%s: answer %v, want the connection to drop", c.customer, a)
		}
		code, exited := svc.proc.Wait(10 * time.Second)
		if !exited || code != 3 {
			t.Fatalf("%s: exited %v with %d, want exit status 3", c.customer, exited, code)
		}
		cu, err := sys.ledger.Customer(ctx, c.customer)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cu.Grant("credit_card"); !ok {
			t.Fatalf("%s: arbiter holds %+v, want the grant the crashed service redeemed", c.customer, cu.Products)
		}
		if _, ok := readDB(t, svc.db, "products")[c.customer]; ok {
			t.Fatalf("%s: product written before the crash", c.customer)
		}
	}

	// The restart settles the pending rows before it reports ready.
	svc := sys.startService(t, "credit_card", "card-service", cardKey, db, "")
	products := readDB(t, svc.db, "products")
	for _, c := range crashes {
		cu, err := sys.ledger.Customer(ctx, c.customer)
		if err != nil {
			t.Fatal(err)
		}
		g, ok := cu.Grant("credit_card")
		p, issued := products[c.customer]
		if !ok || !issued || p.CheckID != g.CheckID || p.Fence != g.Fence {
			t.Errorf("%s (%v): arbiter grant %+v (%v), product %+v (%v): want the same check on both", c.customer, c.flow, g, ok, p, issued)
		}
	}
	if pending := readDB(t, svc.db, "pending"); len(pending) != 0 {
		t.Errorf("pending rows left after restart: %v", pending)
	}
	if a := svc.applyOnline(ctx, "CRASH-1"); a.Status != http.StatusConflict {
		t.Errorf("second card for CRASH-1: %v, want 409", a)
	}
	svc.proc.Stop()
}

func testCompensation(ctx context.Context, t *testing.T, sys *system) {
	const customer = "COMP-1"
	svc := sys.startService(t, "credit_card", "card-service", cardKey, "card-broken.db", "fail-insert")
	a := svc.applyOnline(ctx, customer)
	if a.Status != http.StatusInternalServerError || a.Body["compensated"] != true || a.str("reason") != "issue_failed" {
		t.Fatalf("broken insert: %v, want 500 issue_failed compensated", a)
	}
	cu, err := sys.ledger.Customer(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	if len(cu.Products) != 0 || cu.Hold != nil {
		t.Fatalf("arbiter after compensation: %+v, want no grant and no hold", cu)
	}
	events, err := sys.branch.Audit(ctx, customer, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 || events[0].Type != "released" || events[1].Type != "redeemed" {
		t.Fatalf("audit = %+v, want released after redeemed", events)
	}
	// The customer is free: the loan service can issue a loan.
	if a := sys.loan.applyOnline(ctx, customer); a.Status != http.StatusCreated {
		t.Fatalf("loan after compensation: %v, want 201", a)
	}
	svc.proc.Stop()
}

func testClose(ctx context.Context, t *testing.T, sys *system) {
	const customer = "CLOSE-1"
	if a := sys.card.applyOnline(ctx, customer); a.Status != http.StatusCreated {
		t.Fatalf("card: %v", a)
	}
	if a := sys.loan.applyOnline(ctx, customer); a.Status != http.StatusConflict || a.str("reason") != "conflicting_product" {
		t.Fatalf("loan while holding a card: %v, want 409 conflicting_product", a)
	}
	a := call(ctx, http.MethodDelete, sys.card.proc.URL+"/v1/products/"+customer, nil)
	if a.Status != http.StatusOK || a.Body["released"] != true {
		t.Fatalf("close: %v, want 200 released", a)
	}
	if a := call(ctx, http.MethodDelete, sys.card.proc.URL+"/v1/products/"+customer, nil); a.Status != http.StatusNotFound {
		t.Fatalf("second close: %v, want 404", a)
	}
	if a := sys.loan.applyOnline(ctx, customer); a.Status != http.StatusCreated {
		t.Fatalf("loan after closing the card: %v, want 201", a)
	}
}
