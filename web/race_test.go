package web_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRaceExclusivity is the invariant under contention: for each of 200
// customers, 16 goroutines race card and loan checks and redeem whatever
// they win, through the HTTP API on a real Redis. Every customer must end
// with exactly one product, and exactly one redemption per customer may
// have succeeded.
func TestRaceExclusivity(t *testing.T) {
	const customers, racers = 200, 16
	a := newAPI(t)
	type service struct{ product, key string }
	services := []service{{"credit_card", cardKey}, {"personal_loan", loanKey}}

	var granted, refused, failed atomic.Int64
	var wg sync.WaitGroup
	// The race that matters is within a customer: all 16 racers of one
	// customer start together. Customers run 25 at a time so a loaded CI
	// machine is not flooded with 3,200 requests at once.
	slots := make(chan struct{}, 25)
	for c := 0; c < customers; c++ {
		customer := fmt.Sprintf("R-%03d", c)
		start := make(chan struct{})
		var done sync.WaitGroup
		slots <- struct{}{}
		for r := 0; r < racers; r++ {
			svc := services[r%2]
			wg.Add(1)
			done.Add(1)
			go func() {
				defer wg.Done()
				defer done.Done()
				<-start
				chk := a.check(t, svc.key, customer, svc.product)
				switch chk.status {
				case http.StatusCreated:
				case http.StatusConflict:
					refused.Add(1)
					return
				default:
					failed.Add(1)
					t.Errorf("check %s %s: %d %s", customer, svc.product, chk.status, chk.raw)
					return
				}
				red := a.do(t, "POST", "/v1/redemptions", svc.key, map[string]string{"token": chk.str("token")})
				if red.status != http.StatusCreated {
					failed.Add(1)
					t.Errorf("redeem %s %s: %d %s", customer, svc.product, red.status, red.raw)
					return
				}
				granted.Add(1)
			}()
		}
		close(start)
		go func() { done.Wait(); <-slots }()
	}
	wg.Wait()

	if got, want := granted.Load(), int64(customers); got != want {
		t.Fatalf("granted = %d, want %d (one per customer)", got, want)
	}
	if got, want := refused.Load(), int64(customers*(racers-1)); got != want {
		t.Fatalf("refused = %d, want %d", got, want)
	}
	for c := 0; c < customers; c++ {
		customer := fmt.Sprintf("R-%03d", c)
		r := a.do(t, "GET", "/v1/customers/"+customer, checkerKey, nil)
		products, _ := r.body["products"].([]any)
		if len(products) != 1 || r.body["hold"] != nil {
			t.Fatalf("customer %s = %s, want exactly one product and no hold", customer, r.raw)
		}
	}
}
