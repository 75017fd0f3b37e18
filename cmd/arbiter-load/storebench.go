package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/load"
	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/peer"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// tripCounter is a go-redis hook counting what a client sends: round trips
// (one per command or pipeline) and commands (pipelines count each one,
// MULTI and EXEC included).
type tripCounter struct{ trips, cmds atomic.Int64 }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// benchResult is one closed-loop measurement of one design and operation.
type benchResult struct {
	Design      string  `json:"design"`
	Op          string  `json:"op"`
	Round       int     `json:"round"`
	Ops         int64   `json:"ops"`
	Rate        float64 `json:"ops_per_s"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	TripsPerOp  float64 `json:"round_trips_per_op"`
	CmdsPerOp   float64 `json:"commands_sent_per_op"`
	Errors      int64   `json:"errors"`
	Concurrency int     `json:"concurrency"`
	FirstError  string  `json:"first_error,omitempty"`
}

// design is one implementation of the two operations under test.
type design struct {
	name  string
	trips *tripCounter
	check func(ctx context.Context, customer string) (string, error)
	both  func(ctx context.Context, customer string) error
}

// storeBench measures arbiter's store (through validation.Service, as the
// HTTP handlers call it) against the redsync peer design, in process and
// closed loop on the same Redis, alternating designs for -rounds rounds so
// that a noisy neighbour hurts both alike.
func storeBench(ctx context.Context, f *scenarioFlags, stdout, stderr io.Writer) error {
	if f.redisURL == "" {
		return errors.New("storebench needs -redis-url")
	}
	designs, closeAll, err := newDesigns(ctx, f.redisURL, f.concurrency, f.rtt, f.autopipeline)
	if err != nil {
		return err
	}
	defer closeAll()
	if f.rates != "" {
		return storeSweep(ctx, f, designs, stdout, stderr)
	}
	prefix := fmt.Sprintf("B%x", time.Now().UnixNano()&0xffffffffff)
	var results []benchResult
	for round := 1; round <= f.rounds; round++ {
		for k, op := range []string{"check", "check+redeem"} {
			for _, d := range designs {
				r := closedLoop(ctx, d, op, fmt.Sprintf("%s-%s-%d-%d", prefix, d.name, round, k), f.concurrency, f.cfg.Duration)
				r.Round = round
				fmt.Fprintf(stderr, "storebench round %d %-8s %-13s %8.0f ops/s p50 %6.2f ms p99 %6.2f ms %4.1f round trips/op errors %d\n",
					round, r.Design, r.Op, r.Rate, r.P50, r.P99, r.TripsPerOp, r.Errors)
				results = append(results, r)
				if r.Errors > 0 {
					return fmt.Errorf("storebench %s %s: %d errors, first: %s", r.Design, r.Op, r.Errors, r.FirstError)
				}
			}
		}
	}
	return writeJSON(orStdout(f.jsonPath), stdout, results)
}

func orStdout(path string) string {
	if path == "" {
		return "-"
	}
	return path
}

func newDesigns(ctx context.Context, url string, conc int, rtt time.Duration, autopipeline bool) ([]design, func(), error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("-redis-url: %w", err)
	}
	opts.PoolSize = conc + 10
	if rtt > 0 {
		opts.Dialer = delayedDialer(rtt)
	}
	ra, rp := redis.NewClient(opts), redis.NewClient(opts)
	ta, tp := &tripCounter{}, &tripCounter{}
	ra.AddHook(ta)
	rp.AddHook(tp)
	store := redisstore.New(ra, redisstore.Options{AutoPipeline: autopipeline})
	if err := store.Load(ctx); err != nil {
		return nil, nil, err
	}
	svc := &validation.Service{Store: store, Policy: validation.DefaultPolicy()}
	actor := validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}}
	arbiterCheck := func(ctx context.Context, customer string) (string, error) {
		c, _, err := svc.Check(ctx, actor, validation.CheckInput{CustomerID: customer, Product: "credit_card"})
		return c.ID, err
	}
	p := peer.New(rp)
	peerCheck := func(ctx context.Context, customer string) (string, error) {
		return p.Check(ctx, customer, "credit_card")
	}
	designs := []design{
		{name: "arbiter", trips: ta, check: arbiterCheck, both: func(ctx context.Context, customer string) error {
			c, _, err := svc.Check(ctx, actor, validation.CheckInput{CustomerID: customer, Product: "credit_card"})
			if err == nil {
				_, _, err = svc.RedeemToken(ctx, actor, customer, "credit_card", c.ID, validation.TokenProof{Secret: validation.TokenSecret(c.Secret)})
			}
			return err
		}},
		{name: "redsync", trips: tp, check: peerCheck, both: func(ctx context.Context, customer string) error {
			id, err := peerCheck(ctx, customer)
			if err == nil {
				err = p.Redeem(ctx, customer, id)
			}
			return err
		}},
	}
	return designs, func() { ra.Close(); rp.Close() }, nil
}

// delayedDialer connects to Redis through connections whose every write
// first waits rtt: loopback made to cost what a network round trip costs
// (go-redis writes a command, or a whole pipeline, in one write), so the
// designs are compared where round trips are not free.
func delayedDialer(rtt time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return delayedConn{Conn: c, rtt: rtt}, nil
	}
}

type delayedConn struct {
	net.Conn
	rtt time.Duration
}

func (c delayedConn) Write(b []byte) (int, error) {
	time.Sleep(c.rtt)
	return c.Conn.Write(b)
}

// closedLoop runs op with conc workers for d, each on customers never seen before.
func closedLoop(ctx context.Context, d design, op, prefix string, conc int, dur time.Duration) benchResult {
	var (
		mu     sync.Mutex
		hist   = hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
		ops    atomic.Int64
		errs   atomic.Int64
		first  atomic.Value
		wg     sync.WaitGroup
		trips0 = d.trips.trips.Load()
		cmds0  = d.trips.cmds.Load()
	)
	start := time.Now()
	deadline := start.Add(dur)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				customer := fmt.Sprintf("%s-%d-%d", prefix, w, n)
				t := time.Now()
				var err error
				if op == "check" {
					_, err = d.check(ctx, customer)
				} else {
					err = d.both(ctx, customer)
				}
				us := time.Since(t).Microseconds()
				if err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				ops.Add(1)
				mu.Lock()
				_ = hist.RecordValue(max(us, 1))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := ops.Load()
	r := benchResult{Design: d.name, Op: op, Ops: n, Rate: float64(n) / elapsed.Seconds(),
		P50: float64(hist.ValueAtQuantile(50)) / 1000, P99: float64(hist.ValueAtQuantile(99)) / 1000,
		Errors: errs.Load(), Concurrency: conc}
	if e, ok := first.Load().(string); ok {
		r.FirstError = e
	}
	if total := n + r.Errors; total > 0 {
		r.TripsPerOp = float64(d.trips.trips.Load()-trips0) / float64(total)
		r.CmdsPerOp = float64(d.trips.cmds.Load()-cmds0) / float64(total)
	}
	return r
}

// sweepResult is one open-model step of one design: latency at an offered rate.
type sweepResult struct {
	Design   string  `json:"design"`
	Op       string  `json:"op"`
	Offered  float64 `json:"offered_per_s"`
	Achieved float64 `json:"achieved_per_s"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Dropped  int64   `json:"dropped"`
	Errors   int64   `json:"errors"`
}

// storeSweep is storebench -rates: both designs at each offered rate in
// turn (open model, -duration each, at most -max-in-flight at once), the
// check operation on fresh customers, each design until the first step it
// does not keep up with (as the HTTP sweeps stop). Latency against offered rate shows
// where each design's queue starts, which a closed loop hides.
func storeSweep(ctx context.Context, f *scenarioFlags, designs []design, stdout, stderr io.Writer) error {
	prefix := fmt.Sprintf("S%x", time.Now().UnixNano()&0xffffffffff)
	var out []sweepResult
	fell := map[string]bool{}
	for _, field := range strings.Fields(f.rates) {
		rate, err := strconv.ParseFloat(field, 64)
		if err != nil || rate <= 0 {
			return fmt.Errorf("-rates: %q is not a positive rate", field)
		}
		for _, d := range designs {
			if fell[d.name] {
				continue
			}
			var (
				mu   sync.Mutex
				hist = hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
				errs atomic.Int64
			)
			p := fmt.Sprintf("%s-%s-%s", prefix, d.name, field)
			o := load.Run(ctx, load.Plan{Rate: rate, Duration: f.cfg.Duration, MaxInFlight: f.cfg.MaxInFlight}, nil, func(ctx context.Context, i int64) {
				t := time.Now()
				if _, err := d.check(ctx, p+"-"+strconv.FormatInt(i, 10)); err != nil {
					errs.Add(1)
					return
				}
				mu.Lock()
				_ = hist.RecordValue(max(time.Since(t).Microseconds(), 1))
				mu.Unlock()
			})
			r := sweepResult{Design: d.name, Op: "check", Offered: rate, Achieved: float64(hist.TotalCount()) / o.Elapsed.Seconds(),
				P50: float64(hist.ValueAtQuantile(50)) / 1000, P99: float64(hist.ValueAtQuantile(99)) / 1000,
				Dropped: o.Dropped, Errors: errs.Load()}
			fmt.Fprintf(stderr, "storebench sweep %-8s %6.0f/s offered %8.0f/s achieved p50 %6.2f ms p99 %7.2f ms dropped %d errors %d\n",
				r.Design, r.Offered, r.Achieved, r.P50, r.P99, r.Dropped, r.Errors)
			out = append(out, r)
			// Past the step where a design stops keeping up, its queue
			// only grows: the sweep goes on with the others.
			fell[d.name] = r.Dropped > 0 || r.Errors > 0 || r.Achieved < 0.97*r.Offered
		}
		if !slices.ContainsFunc(designs, func(d design) bool { return !fell[d.name] }) {
			break // every design has fallen over
		}
	}
	return writeJSON(orStdout(f.jsonPath), stdout, out)
}
