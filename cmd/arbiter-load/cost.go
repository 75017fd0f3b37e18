package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/load"
)

// minimalHold is the baseline every script is measured against: the least
// a hold can be (a fence counter and a hold with a TTL), in one script.
const minimalHold = `local fence = redis.call('INCR', KEYS[1])
if redis.call('SET', KEYS[2], fence, 'NX', 'PX', ARGV[1]) then return fence end
return 0`

// opCost is what one operation costs, measured over a fixed number of calls
// with nothing else running: Redis time per script call (INFO
// commandstats) and arbiter's own CPU per request (/proc/<pid>/stat).
type opCost struct {
	Op       string           `json:"op"`
	What     string           `json:"what"`
	Requests int64            `json:"requests"`
	Statuses map[string]int64 `json:"statuses"`
	// Unexpected counts answers other than the operation's own status.
	Unexpected int64 `json:"unexpected"`
	load.ScriptCost
	// UsecPerCall (in ScriptCost) is the median over batches of `batch`
	// calls: Redis times a script by the wall clock, so a burst of a noisy
	// neighbour's CPU inflates the batch it lands in, not the figure.
	// MeanUsecPerCall is the plain total over calls.
	MeanUsecPerCall float64 `json:"usec_per_call_mean"`
	Batches         int     `json:"batches"`
	// SHA, Keys and Commands are what MONITOR showed one such request send
	// and run: the script's SHA, how many keys it named, the commands it
	// called (in order, repeats kept).
	SHA      string   `json:"sha,omitempty"`
	Keys     int      `json:"keys"`
	Commands []string `json:"script_commands"`
	// ArbiterCPUUs is arbiter's user+system CPU per request, microseconds;
	// 0 without -pid.
	ArbiterCPUUs float64 `json:"arbiter_cpu_us_per_request"`
	ArbiterCPUMs float64 `json:"arbiter_cpu_ms"`
}

// costReport is the JSON of `arbiter-load cost`.
type costReport struct {
	Requests    int      `json:"requests_per_op"`
	Concurrency int      `json:"concurrency"`
	ClockTicks  int      `json:"clock_ticks_per_s"`
	MinimalSHA  string   `json:"minimal_sha"`
	Ops         []opCost `json:"ops"`
}

// costBench is `arbiter-load cost`: each operation alone, -requests times
// at -concurrency, setup (the holds to redeem, the grants to refuse)
// outside the measured window.
func costBench(ctx context.Context, f *scenarioFlags, stdout, stderr io.Writer) error {
	if f.redisURL == "" {
		return errors.New("cost needs -redis-url")
	}
	opts, err := redis.ParseURL(f.redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	opts.PoolSize = f.concurrency + 4
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	c := load.NewClient(f.base, f.keys, f.concurrency+4, f.timeout, load.NewRecorder())
	defer c.CloseIdle()
	if err := load.WaitReady(ctx, c.Base, 10*time.Second); err != nil {
		return err
	}
	m := &meter{f: f, rdb: rdb, c: c, prefix: fmt.Sprintf("K%x", time.Now().UnixNano()&0xffffffffff)}
	rep := costReport{Requests: f.requests, Concurrency: f.concurrency, ClockTicks: load.ClockTicks}
	minimal := redis.NewScript(minimalHold)
	if rep.MinimalSHA, err = minimal.Load(ctx, rdb).Result(); err != nil {
		return fmt.Errorf("load the minimal script: %w", err)
	}
	for _, op := range m.ops(minimal) {
		r, err := m.measure(ctx, op)
		if err != nil {
			return fmt.Errorf("%s: %w", op.name, err)
		}
		fmt.Fprintf(stderr, "cost %-13s %6d calls %8.1f us/call in Redis %5.1f in-script cmds/call, arbiter %7.1f us CPU/request, statuses %v\n",
			r.Op, r.Calls, r.UsecPerCall, r.InScriptPerCall, r.ArbiterCPUUs, r.Statuses)
		rep.Ops = append(rep.Ops, r)
	}
	return writeJSON(orStdout(f.jsonPath), stdout, rep)
}

// costOp is one operation: setup(n) prepares n calls outside the measure
// and returns their inputs; call(i) makes the i-th and returns its status.
type costOp struct {
	name, what string
	want       int  // the HTTP status every call should get (minimal: 1)
	reuse      bool // one setup serves every batch (refusals change nothing)
	setup      func(ctx context.Context, n int) ([]load.CheckResponse, error)
	call       func(ctx context.Context, in []load.CheckResponse, i int) int
}

type meter struct {
	f      *scenarioFlags
	rdb    *redis.Client
	c      *load.Client
	prefix string
	seq    atomic.Int64
}

func (m *meter) customer(tag string) string {
	return fmt.Sprintf("%s-%s%d", m.prefix, tag, m.seq.Add(1))
}

// place checks n new customers for a credit card (201), the holds that
// redemptions then redeem.
func (m *meter) place(ctx context.Context, n int) ([]load.CheckResponse, error) {
	out := make([]load.CheckResponse, n)
	var failed atomic.Int64
	parallel(n, m.f.concurrency, func(i int) {
		if !m.c.Check(ctx, m.customer("h"), load.CreditCard, &out[i], http.StatusCreated).OK {
			failed.Add(1)
		}
	})
	if k := failed.Load(); k > 0 {
		return nil, fmt.Errorf("setup: %d of %d checks were not placed", k, n)
	}
	return out, nil
}

func (m *meter) ops(minimal *redis.Script) []costOp {
	status := func(r load.Result) int { return r.Status }
	granted := func(ctx context.Context, n int) ([]load.CheckResponse, error) {
		holds, err := m.place(ctx, min(n, 200))
		if err != nil {
			return nil, err
		}
		for _, h := range holds {
			if !m.c.RedeemToken(ctx, load.CreditCard, h.Token, nil, http.StatusCreated).OK {
				return nil, errors.New("setup: a redemption failed")
			}
		}
		return holds, nil
	}
	return []costOp{
		{name: "minimal", what: "baseline script: INCR + SET NX PX", call: func(ctx context.Context, _ []load.CheckResponse, i int) int {
			k := fmt.Sprintf("bench:{%s-m%d}:", m.prefix, m.seq.Add(1))
			if err := minimal.EvalSha(ctx, m.rdb, []string{k + "fence", k + "hold"}, 300000).Err(); err != nil {
				return 0
			}
			return 1
		}, want: 1},
		{name: "ping", what: "GET /v1/ping, authenticated: no store", want: http.StatusNoContent,
			call: func(ctx context.Context, _ []load.CheckResponse, _ int) int {
				return status(m.c.Do(ctx, "ping", http.MethodGet, "/v1/ping", m.c.Keys.Checker, nil, nil, http.StatusNoContent))
			}},
		{name: "check", what: "POST /v1/checks, a new customer: hold placed (201)", want: http.StatusCreated,
			call: func(ctx context.Context, _ []load.CheckResponse, _ int) int {
				return status(m.c.Check(ctx, m.customer("c"), load.CreditCard, nil, http.StatusCreated))
			}},
		{name: "refusal", what: "POST /v1/checks for a loan, the customer holds a card (409 conflicting_product)", want: http.StatusConflict,
			setup: granted, reuse: true, call: func(ctx context.Context, in []load.CheckResponse, i int) int {
				return status(m.c.Check(ctx, in[i%len(in)].CustomerID, load.PersonalLoan, nil, http.StatusConflict))
			}},
		{name: "redeem_token", what: "POST /v1/redemptions {token} of a live hold (201)", want: http.StatusCreated,
			setup: m.place, call: func(ctx context.Context, in []load.CheckResponse, i int) int {
				return status(m.c.RedeemToken(ctx, load.CreditCard, in[i].Token, nil, http.StatusCreated))
			}},
		{name: "redeem_otp", what: "POST /v1/redemptions {customer_id, product, otp} of a live hold (201)", want: http.StatusCreated,
			setup: m.place, call: func(ctx context.Context, in []load.CheckResponse, i int) int {
				return status(m.c.RedeemOTP(ctx, in[i].CustomerID, load.CreditCard, in[i].OTP, nil, http.StatusCreated))
			}},
	}
}

// batch bounds the holds placed before their redemptions are measured, so
// every OTP is redeemed well inside its 30-second step; each batch is one
// sample of Redis's µs per call.
const batch = 250

// measure runs op's -requests calls in batches; only the calls are inside
// the snapshots (commandstats, arbiter's CPU).
func (m *meter) measure(ctx context.Context, op costOp) (opCost, error) {
	r := opCost{Op: op.name, What: op.what, Statuses: map[string]int64{}}
	var (
		mu       sync.Mutex
		cpu      time.Duration
		sc       load.ScriptCost
		perBatch []float64 // each batch's µs per call
		in       []load.CheckResponse
		found    bool // the MONITOR call was made
	)
	for done := 0; done < m.f.requests; {
		n := min(batch, m.f.requests-done)
		if op.setup != nil && (len(in) == 0 || !op.reuse) {
			var err error
			if in, err = op.setup(ctx, n); err != nil {
				return r, err
			}
		}
		if !found { // one call under MONITOR: what a request of this kind runs
			if err := m.discover(ctx, op, in, &r); err != nil {
				return r, err
			}
			found = true
			if op.setup != nil && !op.reuse {
				in = in[1:] // that hold is redeemed now
				n = len(in)
			}
		}
		d, used, err := m.window(ctx, func() {
			parallel(n, m.f.concurrency, func(i int) {
				s := op.call(ctx, in, i)
				mu.Lock()
				defer mu.Unlock()
				r.Statuses[strconv.Itoa(s)]++
				if s != op.want {
					r.Unexpected++
				}
			})
		})
		if err != nil {
			return r, err
		}
		if d.Calls > 0 {
			perBatch = append(perBatch, d.UsecPerCall)
		}
		sc.Calls, sc.Usec = sc.Calls+d.Calls, sc.Usec+d.Usec
		sc.InScriptPerCall += d.InScriptPerCall * float64(d.Calls)
		cpu += used
		r.Requests += int64(n)
		done += n
	}
	r.finish(sc, perBatch, cpu, m.f.pid > 0)
	if r.Unexpected > r.Requests/100 {
		return r, fmt.Errorf("%d of %d calls got another answer than %d: %v", r.Unexpected, r.Requests, op.want, r.Statuses)
	}
	return r, nil
}

// finish turns the sums over batches into per-call figures.
func (r *opCost) finish(sc load.ScriptCost, perBatch []float64, cpu time.Duration, withCPU bool) {
	if sc.Calls > 0 {
		r.MeanUsecPerCall = float64(sc.Usec) / float64(sc.Calls)
		sc.UsecPerCall = median(perBatch)
		sc.InScriptPerCall /= float64(sc.Calls)
	}
	r.ScriptCost, r.Batches = sc, len(perBatch)
	if withCPU && r.Requests > 0 {
		r.ArbiterCPUMs = float64(cpu.Microseconds()) / 1000
		r.ArbiterCPUUs = float64(cpu.Microseconds()) / float64(r.Requests)
	}
}

// window runs fn between two snapshots of Redis's commandstats and
// arbiter's CPU time and returns the differences.
func (m *meter) window(ctx context.Context, fn func()) (load.ScriptCost, time.Duration, error) {
	before, err := load.CommandTimes(ctx, m.rdb)
	if err != nil {
		return load.ScriptCost{}, 0, err
	}
	cpu0, err := m.cpu()
	if err != nil {
		return load.ScriptCost{}, 0, err
	}
	fn()
	cpu1, err := m.cpu()
	if err != nil {
		return load.ScriptCost{}, 0, err
	}
	after, err := load.CommandTimes(ctx, m.rdb)
	if err != nil {
		return load.ScriptCost{}, 0, err
	}
	return load.ScriptDelta(before, after), cpu1 - cpu0, nil
}

func (m *meter) cpu() (time.Duration, error) {
	if m.f.pid <= 0 {
		return 0, nil
	}
	return load.ProcCPU(m.f.pid)
}

// discover makes one call of op under MONITOR and keeps the script it ran.
func (m *meter) discover(ctx context.Context, op costOp, in []load.CheckResponse, r *opCost) error {
	mon, err := load.StartMonitor(ctx, m.f.redisURL)
	if err != nil {
		return err
	}
	op.call(ctx, in, 0)
	for _, l := range mon.Stop(200 * time.Millisecond) {
		switch {
		case l.Source == "lua":
			r.Commands = append(r.Commands, l.Args[0])
		case load.IsScriptCall(l.Args[0]) && r.SHA == "" && len(l.Args) > 2:
			r.SHA = l.Args[1]
			r.Keys, _ = strconv.Atoi(l.Args[2])
		}
	}
	r.Commands = slices.Clip(r.Commands)
	return nil
}

// median of xs (not empty); xs is sorted in place.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// parallel runs fn(0..n-1) on at most conc goroutines.
func parallel(n, conc int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				fn(int(i))
			}
		}()
	}
	wg.Wait()
}
