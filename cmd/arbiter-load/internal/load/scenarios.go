package load

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is the common input of every scenario.
type Config struct {
	Rate        float64       // iterations per second
	Duration    time.Duration // how long iterations keep starting
	MaxInFlight int           // concurrent iterations at most; default 1000
	// Customers is the contention pool size (contention, default 20) or the
	// number of already-granted customers that refused checks aim at
	// (checks with Refused > 0, default 1000).
	Customers int
	// Refused is the fraction (0 to 1) of checks aimed at a customer who
	// already holds the conflicting product (checks scenario only).
	Refused float64
	// Generation is how often contention starts a fresh pool of customers,
	// so races go on all run long instead of ending once the pool is
	// granted; default 2s.
	Generation time.Duration
	Prefix     string    // customer id prefix, unique per run; default from the clock
	Progress   io.Writer // one line per second; nil for none
	// NoRedeem makes the checks scenario check only (no redemption).
	NoRedeem bool
	// Ready, when set, is called once the scenario's setup is done, right
	// before the measured load starts (to snapshot Redis counters).
	Ready func()
}

func (c *Config) ready() {
	if c.Ready != nil {
		c.Ready()
	}
}

func (c *Config) defaults() {
	if c.Prefix == "" {
		c.Prefix = fmt.Sprintf("L%x", time.Now().UnixNano()&0xffffffffff)
	}
	if c.Generation <= 0 {
		c.Generation = 2 * time.Second
	}
}

// Report is a scenario's outcome: the JSON report of arbiter-load.
type Report struct {
	Scenario   string                    `json:"scenario"`
	BaseURL    string                    `json:"base_url"`
	Started    time.Time                 `json:"started"`
	Rate       float64                   `json:"offered_rate_per_s"`
	Duration   float64                   `json:"duration_s"`
	Iterations int64                     `json:"iterations"`
	Achieved   float64                   `json:"achieved_rate_per_s"`
	Dropped    int64                     `json:"dropped_iterations"`
	MaxLagMs   float64                   `json:"max_schedule_lag_ms"`
	Requests   int64                     `json:"requests"`
	Failed     int64                     `json:"failed_requests"`
	Elapsed    float64                   `json:"elapsed_s"`
	Endpoints  map[string]EndpointReport `json:"endpoints"`
	Counters   map[string]int64          `json:"counters"`
	Violations []string                  `json:"violations"`
	Redis      *RedisDelta               `json:"redis,omitempty"`
}

// Passed reports whether the run had no violation, no failed request and no dropped arrival.
func (r Report) Passed() bool { return len(r.Violations) == 0 && r.Failed == 0 && r.Dropped == 0 }

// run drives it on cfg's schedule with a progress line, then fills the
// common part of the report.
func run(ctx context.Context, name string, c *Client, cfg Config, it Iteration) Report {
	var inFlight atomic.Int64
	stop := make(chan struct{})
	var dropped atomic.Int64
	done := make(chan struct{})
	if cfg.Progress != nil {
		go func() { c.Rec.Progress(cfg.Progress, name, &inFlight, dropped.Load, stop); close(done) }()
	} else {
		close(done)
	}
	started := time.Now()
	out := Run(ctx, Plan{Rate: cfg.Rate, Duration: cfg.Duration, MaxInFlight: cfg.MaxInFlight}, &inFlight, it)
	dropped.Store(out.Dropped)
	close(stop)
	<-done
	return Report{
		Scenario: name, BaseURL: c.Base, Started: started.UTC(), Rate: cfg.Rate, Duration: cfg.Duration.Seconds(),
		Iterations: out.Started, Achieved: float64(out.Started) / out.Elapsed.Seconds(), Dropped: out.Dropped,
		MaxLagMs: float64(out.MaxLag.Microseconds()) / 1000,
		Requests: c.Rec.Requests(), Failed: c.Rec.Failed(), Endpoints: c.Rec.Endpoints(out.Elapsed),
		Elapsed: out.Elapsed.Seconds(), Counters: map[string]int64{}, Violations: []string{},
	}
}

// refresh re-reads the recorder after requests made past the load (the
// read-back of every customer).
func (r *Report) refresh(c *Client) {
	r.Requests, r.Failed = c.Rec.Requests(), c.Rec.Failed()
	r.Endpoints = c.Rec.Endpoints(time.Duration(r.Elapsed * float64(time.Second)))
}

// Checks is the open-model check scenario: each iteration checks a customer
// never seen before and redeems the approval token it gets (201 then 201;
// with cfg.NoRedeem, the check only).
// With cfg.Refused > 0 that fraction of iterations instead checks a
// personal loan for a customer who already holds a credit card (409).
func Checks(ctx context.Context, c *Client, cfg Config) (Report, error) {
	cfg.defaults()
	var granted []string
	if cfg.Refused > 0 {
		n := cfg.Customers
		if n <= 0 {
			n = 1000
		}
		var err error
		if granted, err = grantCustomers(ctx, c, cfg.Prefix+"-r", n); err != nil {
			return Report{}, err
		}
	}
	refusedPer100 := int64(cfg.Refused*100 + 0.5)
	var grants atomic.Int64
	cfg.ready()
	rep := run(ctx, "checks", c, cfg, func(ctx context.Context, i int64) {
		// i*61 mod 100 visits every residue once per 100 arrivals, so the
		// refused share is exact and evenly spread.
		if len(granted) > 0 && (i*61)%100 < refusedPer100 {
			c.Check(ctx, granted[i%int64(len(granted))], PersonalLoan, nil, http.StatusConflict)
			return
		}
		product := CreditCard
		if i%2 == 1 {
			product = PersonalLoan
		}
		var ch CheckResponse
		if !c.Check(ctx, fmt.Sprintf("%s-c%d", cfg.Prefix, i), product, &ch, http.StatusCreated).OK || cfg.NoRedeem {
			return
		}
		if c.RedeemToken(ctx, product, ch.Token, nil, http.StatusCreated).OK {
			grants.Add(1)
		}
	})
	rep.Counters["grants"] = grants.Load()
	return rep, nil
}

// grantCustomers gives n customers a credit card (check then redeem), with
// a recorder of its own so setup does not count in the figures.
func grantCustomers(ctx context.Context, c *Client, prefix string, n int) ([]string, error) {
	setup := *c
	setup.Rec = NewRecorder()
	ids := make([]string, n)
	errc := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for k := range ids {
		ids[k] = fmt.Sprintf("%s%d", prefix, k)
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer func() { <-sem; wg.Done() }()
			var ch CheckResponse
			r := setup.Check(ctx, id, CreditCard, &ch, http.StatusCreated)
			if r.OK {
				r = setup.RedeemToken(ctx, CreditCard, ch.Token, nil, http.StatusCreated)
			}
			if !r.OK {
				errc <- fmt.Errorf("setup: grant a credit card to %s: status %d %v", id, r.Status, r.Err)
			}
		}(ids[k])
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return ids, nil
}

// tally counts, per customer, the redemptions the client saw succeed (201).
type tally struct {
	mu     sync.Mutex
	grants map[string][]string // customer -> products granted (201s seen)
	seen   map[string]bool     // every customer touched
}

func newTally() *tally { return &tally{grants: map[string][]string{}, seen: map[string]bool{}} }

func (t *tally) touch(customer string) {
	t.mu.Lock()
	t.seen[customer] = true
	t.mu.Unlock()
}

func (t *tally) grant(customer, product string) {
	t.mu.Lock()
	t.grants[customer] = append(t.grants[customer], product)
	t.mu.Unlock()
}

// Contention races card and loan checks and redemptions over a small pool
// of customers (a fresh pool every cfg.Generation), then reads every
// customer back: a customer with two grants, of one product or of both, is
// a violation, and so is a customer the client saw granted twice.
func Contention(ctx context.Context, c *Client, cfg Config) (Report, error) {
	cfg.defaults()
	pool := cfg.Customers
	if pool <= 0 {
		pool = 20
	}
	t := newTally()
	cfg.ready()
	start := time.Now()
	rep := run(ctx, "contention", c, cfg, func(ctx context.Context, i int64) {
		gen := int64(time.Since(start) / cfg.Generation)
		cust := fmt.Sprintf("%s-g%d-%d", cfg.Prefix, gen, rand.IntN(pool))
		product := CreditCard
		if rand.IntN(2) == 1 {
			product = PersonalLoan
		}
		t.touch(cust)
		var ch CheckResponse
		if r := c.Check(ctx, cust, product, &ch, http.StatusCreated, http.StatusConflict); r.Status != http.StatusCreated || !r.OK {
			return
		}
		// A quarter of the winners redeem twice at once, as a retrying
		// product service would: one 201 and one 200 replay, never two grants.
		n := 1
		if rand.IntN(4) == 0 {
			n = 2
		}
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := c.RedeemToken(ctx, product, ch.Token, nil, http.StatusCreated, http.StatusOK); r.Status == http.StatusCreated {
					t.grant(cust, product)
				}
			}()
		}
		wg.Wait()
	})
	violations, read := verify(ctx, c, t)
	rep.Violations = append(rep.Violations, violations...)
	rep.refresh(c)
	rep.Counters["customers_read"] = int64(read)
	rep.Counters["grants"] = int64(t.granted())
	return rep, nil
}

func (t *tally) granted() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, ps := range t.grants {
		n += len(ps)
	}
	return n
}

// verify reads every touched customer back (after the load, 16 at a time)
// and returns one line per broken invariant, and how many it read.
func verify(ctx context.Context, c *Client, t *tally) ([]string, int) {
	t.mu.Lock()
	customers := make([]string, 0, len(t.seen))
	for id := range t.seen {
		customers = append(customers, id)
	}
	t.mu.Unlock()
	var (
		mu  sync.Mutex
		out []string
		wg  sync.WaitGroup
	)
	add := func(s string) { mu.Lock(); out = append(out, s); mu.Unlock() }
	sem := make(chan struct{}, 16)
	for _, id := range customers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var cr CustomerResponse
			if r := c.Customer(ctx, id, &cr, http.StatusOK); !r.OK {
				add(fmt.Sprintf("customer %s: could not be read back (status %d, %v)", id, r.Status, r.Err))
				return
			}
			if len(cr.Products) > 1 {
				ps := make([]string, len(cr.Products))
				for k, p := range cr.Products {
					ps[k] = p.Product
				}
				add(fmt.Sprintf("customer %s holds %d products %v: exclusivity broken", id, len(ps), ps))
			}
			t.mu.Lock()
			seen := t.grants[id]
			t.mu.Unlock()
			if len(seen) > 1 {
				add(fmt.Sprintf("customer %s: the client saw %d successful redemptions %v", id, len(seen), seen))
			}
		}()
	}
	wg.Wait()
	return out, len(customers)
}

// Ping requests path at the plan's rate: the framework baseline, the same
// HTTP stack and middleware with no Redis call. A path under /v1/ (the
// authenticated GET /v1/ping) carries the checker's key, so the baseline
// pays for authentication as every API request does.
func Ping(ctx context.Context, c *Client, cfg Config, path string) Report {
	cfg.defaults()
	cfg.ready()
	key := ""
	if strings.HasPrefix(path, "/v1/") {
		key = c.Keys.Checker
	}
	return run(ctx, "ping", c, cfg, func(ctx context.Context, i int64) {
		c.Do(ctx, "ping", http.MethodGet, path, key, nil, nil, http.StatusOK, http.StatusNoContent)
	})
}
