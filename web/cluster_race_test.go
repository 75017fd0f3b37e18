package web_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestRaceExclusivityCluster is TestRaceExclusivity on a real 3-master /
// 3-replica Redis Cluster: the 200 customers spread over every master, and
// each customer's keys share one slot, so each script stays atomic.
func TestRaceExclusivityCluster(t *testing.T) {
	c := redistest.MustStartCluster(t)
	rdb := c.Client(t)
	redisstore.FollowFailovers(rdb)
	raceExclusivity(t, newAPIOn(t, rdb))
	// The load really was spread: every master holds customers.
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		if n, err := m.DBSize(ctx).Result(); err != nil || n == 0 {
			return fmt.Errorf("master %s holds %d keys (%v)", m.Options().Addr, n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// raceExclusivity is the body of the race tests: for each of 200
// customers, 16 goroutines race card and loan checks and redeem whatever
// they win. Every customer must end with exactly one product, and exactly
// one redemption per customer may have succeeded.
func raceExclusivity(t *testing.T, a *api) {
	const customers, racers = 200, 16
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
