package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/load"
)

// closedReport is the JSON of `arbiter-load closed`.
type closedReport struct {
	Op          string              `json:"op"`
	Concurrency int                 `json:"concurrency"`
	Setup       int                 `json:"setup_holds"`
	Elapsed     float64             `json:"elapsed_s"`
	Rate        float64             `json:"ops_per_s"`
	Endpoint    load.EndpointReport `json:"endpoint"`
	Exhausted   bool                `json:"setup_exhausted"`
	Profile     string              `json:"profile,omitempty"`
	// ServerCPUUs is the serving process's user+system CPU per request
	// over the window (/proc/<-pid>/stat); 0 without -pid.
	ServerCPUUs float64 `json:"server_cpu_us_per_request"`
	// RedisCPUUs is redis-server's CPU per request the same way (-redis-pid).
	RedisCPUUs float64 `json:"redis_cpu_us_per_request"`
	// ClientCPUUs is this load generator's own CPU per request, and
	// MachineCPUUs the whole machine's busy CPU per request (/proc/stat:
	// every process and the kernel, steal excluded); MachineBusy is that
	// busy time's share of the window's CPU time (1: every core busy).
	// Beside the two above they say where a machine's cores went, and
	// whether they were all busy.
	ClientCPUUs  float64 `json:"client_cpu_us_per_request"`
	MachineCPUUs float64 `json:"machine_cpu_us_per_request"`
	MachineBusy  float64 `json:"machine_busy_share"`
	// Redis is Redis's own time in script calls over the window (INFO
	// commandstats, -redis-url); ScriptCallsPerRequest is their count per
	// request.
	Redis                 *load.ScriptCost `json:"redis,omitempty"`
	ScriptCallsPerRequest float64          `json:"script_calls_per_request"`
}

// closedLoopHTTP is `arbiter-load closed`: -concurrency workers each
// sending -op back to back for -duration, the throughput a fixed pool of
// clients gets (the open-model sweeps give latency at an offered rate).
// -op redeem first places -setup holds, outside the measure. With
// -pprof-url, arbiter's CPU profile over the measured window goes to
// -profile.
func closedLoopHTTP(ctx context.Context, f *scenarioFlags, stdout, stderr io.Writer) error {
	c := load.NewClient(f.base, f.keys, f.concurrency+4, f.timeout, load.NewRecorder())
	defer c.CloseIdle()
	if err := load.WaitReady(ctx, c.Base, 10*time.Second); err != nil {
		return err
	}
	workers := make([]*load.Client, f.concurrency) // a connection of its own each
	for i := range workers {
		wc, err := c.ConnClient(f.timeout)
		if err != nil {
			return err
		}
		workers[i] = wc
	}
	call, limit, err := closedOp(ctx, f, c)
	if err != nil {
		return err
	}
	rep := closedReport{Op: f.op, Concurrency: f.concurrency, Setup: f.setup}
	meters, err := startMeters(ctx, f)
	if err != nil {
		return err
	}
	defer meters.close()
	prof := startProfile(ctx, f)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(f.cfg.Duration)
	for _, wc := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer wc.CloseIdle()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				i := next.Add(1) - 1
				if limit > 0 && i >= limit {
					return
				}
				call(ctx, wc, i)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := meters.stop(ctx); err != nil {
		return err
	}
	rep.Exhausted = limit > 0 && next.Load() >= limit
	rep.Elapsed = elapsed.Seconds()
	for _, e := range c.Rec.Endpoints(elapsed) {
		rep.Endpoint = e // one endpoint: the op's
	}
	rep.Rate = float64(rep.Endpoint.Count-rep.Endpoint.Failed-rep.Endpoint.Errors) / elapsed.Seconds()
	meters.report(&rep)
	if err := prof(); err != nil {
		return err
	}
	rep.Profile = f.profile
	fmt.Fprintf(stderr, "closed %s: %d workers, %.0f/s for %.1fs, p50 %.2f ms p99 %.2f ms, CPU/request: server %.1f us, redis %.1f us, client %.1f us, machine %.1f us (%.0f%% busy), statuses %v\n",
		f.op, f.concurrency, rep.Rate, rep.Elapsed, rep.Endpoint.P50, rep.Endpoint.P99, rep.ServerCPUUs, rep.RedisCPUUs, rep.ClientCPUUs,
		rep.MachineCPUUs, 100*rep.MachineBusy, rep.Endpoint.Statuses)
	if c.Rec.Failed() > 0 && !f.allowFailures {
		return fmt.Errorf("%d requests failed", c.Rec.Failed())
	}
	return writeJSON(orStdout(f.jsonPath), stdout, rep)
}

// closedOp returns the i-th request of -op, sent with a worker's client, and how many there can be (0:
// no bound); for redeem it first places the -setup holds to redeem.
func closedOp(ctx context.Context, f *scenarioFlags, c *load.Client) (func(context.Context, *load.Client, int64) bool, int64, error) {
	prefix := f.prefix
	if prefix == "" {
		prefix = fmt.Sprintf("Q%x", time.Now().UnixNano()&0xffffffffff)
	}
	switch f.op {
	case "check":
		return func(ctx context.Context, c *load.Client, i int64) bool {
			return c.Check(ctx, prefix+"-c"+strconv.FormatInt(i, 10), load.CreditCard, nil, http.StatusCreated).OK
		}, 0, nil
	case "refusal":
		if f.setup <= 0 {
			return nil, 0, errors.New("closed -op refusal needs -setup N customers to refuse")
		}
		granted, err := grantCards(ctx, f, c, prefix)
		if err != nil {
			return nil, 0, err
		}
		return func(ctx context.Context, c *load.Client, i int64) bool {
			return c.Check(ctx, granted[i%int64(len(granted))], load.PersonalLoan, nil, http.StatusConflict).OK
		}, 0, nil
	case "ping":
		return func(ctx context.Context, c *load.Client, _ int64) bool {
			return c.Do(ctx, "ping", http.MethodGet, "/v1/ping", c.Keys.Checker, nil, nil, http.StatusNoContent).OK
		}, 0, nil
	case "redeem":
		if f.setup <= 0 {
			return nil, 0, errors.New("closed -op redeem needs -setup N holds to redeem")
		}
		holds := make([]load.CheckResponse, f.setup)
		var failed atomic.Int64
		setup := *c
		setup.Rec = load.NewRecorder() // setup is not measured
		parallel(f.setup, f.concurrency, func(i int) {
			if !setup.Check(ctx, fmt.Sprintf("%s-h%d", prefix, i), load.CreditCard, &holds[i], http.StatusCreated).OK {
				failed.Add(1)
			}
		})
		if n := failed.Load(); n > 0 {
			return nil, 0, fmt.Errorf("setup: %d of %d holds not placed", n, f.setup)
		}
		return func(ctx context.Context, c *load.Client, i int64) bool {
			return c.RedeemToken(ctx, load.CreditCard, holds[i].Token, nil, http.StatusCreated).OK
		}, int64(len(holds)), nil
	}
	return nil, 0, fmt.Errorf("closed: -op %q: want check, redeem, refusal or ping", f.op)
}

// grantCards checks and redeems a credit card for -setup new customers,
// outside the measure, and returns their ids: a loan check for any of them
// is refused (409), and changes nothing a later refusal depends on.
func grantCards(ctx context.Context, f *scenarioFlags, c *load.Client, prefix string) ([]string, error) {
	setup := *c
	setup.Rec = load.NewRecorder()
	ids := make([]string, f.setup)
	var failed atomic.Int64
	parallel(f.setup, f.concurrency, func(i int) {
		ids[i] = fmt.Sprintf("%s-g%d", prefix, i)
		var h load.CheckResponse
		if !setup.Check(ctx, ids[i], load.CreditCard, &h, http.StatusCreated).OK ||
			!setup.RedeemToken(ctx, load.CreditCard, h.Token, nil, http.StatusCreated).OK {
			failed.Add(1)
		}
	})
	if n := failed.Load(); n > 0 {
		return nil, fmt.Errorf("setup: %d of %d customers not granted a card", n, f.setup)
	}
	return ids, nil
}

// meters snapshot what a closed-loop window costs the server and Redis:
// their processes' CPU (-pid, -redis-pid) and Redis's script time (INFO
// commandstats over -redis-url). Each is skipped when its flag is unset.
type meters struct {
	pid, redisPID   int
	rdb             *redis.Client
	cpu, redisCPU   time.Duration
	self, busy      time.Duration // this process's CPU, the machine's busy time
	cpus            int
	wall            time.Time // when the machine's busy time was first read; after stop, how long
	window          time.Duration
	cmds            map[string]load.CmdStat
	script          load.ScriptCost
	cpuOK, redisOK  bool
	measuredScripts bool
}

func startMeters(ctx context.Context, f *scenarioFlags) (*meters, error) {
	m := &meters{pid: f.pid, redisPID: f.redisPID}
	if f.redisURL != "" {
		opts, err := redis.ParseURL(f.redisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		m.rdb = redis.NewClient(opts)
		if m.cmds, err = load.CommandTimes(ctx, m.rdb); err != nil {
			m.rdb.Close()
			return nil, err
		}
	}
	var err error
	if m.self, err = load.ProcCPU(os.Getpid()); err != nil {
		return nil, err
	}
	if m.busy, m.cpus, err = load.MachineBusy(); err != nil {
		return nil, err
	}
	m.wall = time.Now()
	if m.pid > 0 {
		if m.cpu, err = load.ProcCPU(m.pid); err != nil {
			return nil, fmt.Errorf("-pid: %w", err)
		}
	}
	if m.redisPID > 0 {
		if m.redisCPU, err = load.ProcCPU(m.redisPID); err != nil {
			return nil, fmt.Errorf("-redis-pid: %w", err)
		}
	}
	return m, nil
}

// stop takes the second snapshot: the deltas replace the first.
func (m *meters) stop(ctx context.Context) error {
	self, err := load.ProcCPU(os.Getpid())
	if err != nil {
		return err
	}
	busy, _, err := load.MachineBusy()
	if err != nil {
		return err
	}
	m.self, m.busy, m.window = self-m.self, busy-m.busy, time.Since(m.wall)
	if m.pid > 0 {
		cpu, err := load.ProcCPU(m.pid)
		if err != nil {
			return fmt.Errorf("-pid: %w", err)
		}
		m.cpu, m.cpuOK = cpu-m.cpu, true
	}
	if m.redisPID > 0 {
		cpu, err := load.ProcCPU(m.redisPID)
		if err != nil {
			return fmt.Errorf("-redis-pid: %w", err)
		}
		m.redisCPU, m.redisOK = cpu-m.redisCPU, true
	}
	if m.rdb != nil {
		after, err := load.CommandTimes(ctx, m.rdb)
		if err != nil {
			return err
		}
		m.script, m.measuredScripts = load.ScriptDelta(m.cmds, after), true
	}
	return nil
}

// report divides the deltas by the requests the window sent.
func (m *meters) report(rep *closedReport) {
	n := float64(rep.Endpoint.Count)
	if n == 0 {
		return
	}
	// CPU is per request answered as the op expects: a failed one is not
	// what the figure prices.
	if ok := float64(rep.Endpoint.Count - rep.Endpoint.Failed - rep.Endpoint.Errors); ok > 0 {
		if m.cpuOK {
			rep.ServerCPUUs = float64(m.cpu.Microseconds()) / ok
		}
		if m.redisOK {
			rep.RedisCPUUs = float64(m.redisCPU.Microseconds()) / ok
		}
		rep.ClientCPUUs = float64(m.self.Microseconds()) / ok
		rep.MachineCPUUs = float64(m.busy.Microseconds()) / ok
	}
	if m.window > 0 {
		rep.MachineBusy = m.busy.Seconds() / (m.window.Seconds() * float64(m.cpus))
	}
	if m.measuredScripts {
		sc := m.script
		rep.Redis, rep.ScriptCallsPerRequest = &sc, float64(sc.Calls)/n
	}
}

func (m *meters) close() {
	if m.rdb != nil {
		m.rdb.Close()
	}
}

// startProfile asks arbiter's pprof listener for a CPU profile as long as
// the measure and returns a func that waits for it and writes it to
// -profile; without -pprof-url it does nothing.
func startProfile(ctx context.Context, f *scenarioFlags) func() error {
	if f.pprofURL == "" || f.profile == "" {
		return func() error { return nil }
	}
	secs := int(math.Ceil(f.cfg.Duration.Seconds()))
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", f.pprofURL, secs), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- fmt.Errorf("profile: %w", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		out, err := os.Create(f.profile)
		if err == nil {
			_, err = io.Copy(out, resp.Body)
			err = errors.Join(err, out.Close())
		}
		done <- err
	}()
	return func() error { return <-done }
}
