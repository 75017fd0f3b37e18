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
	call, limit, err := closedOp(ctx, f, c)
	if err != nil {
		return err
	}
	rep := closedReport{Op: f.op, Concurrency: f.concurrency, Setup: f.setup}
	prof := startProfile(ctx, f)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(f.cfg.Duration)
	for range f.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				i := next.Add(1) - 1
				if limit > 0 && i >= limit {
					return
				}
				call(ctx, i)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	rep.Exhausted = limit > 0 && next.Load() >= limit
	rep.Elapsed = elapsed.Seconds()
	for _, e := range c.Rec.Endpoints(elapsed) {
		rep.Endpoint = e // one endpoint: the op's
	}
	rep.Rate = float64(rep.Endpoint.Count-rep.Endpoint.Failed-rep.Endpoint.Errors) / elapsed.Seconds()
	if err := prof(); err != nil {
		return err
	}
	rep.Profile = f.profile
	fmt.Fprintf(stderr, "closed %s: %d workers, %.0f/s for %.1fs, p50 %.2f ms p99 %.2f ms, statuses %v\n",
		f.op, f.concurrency, rep.Rate, rep.Elapsed, rep.Endpoint.P50, rep.Endpoint.P99, rep.Endpoint.Statuses)
	if c.Rec.Failed() > 0 && !f.allowFailures {
		return fmt.Errorf("%d requests failed", c.Rec.Failed())
	}
	return writeJSON(orStdout(f.jsonPath), stdout, rep)
}

// closedOp returns the i-th request of -op and how many there can be (0:
// no bound); for redeem it first places the -setup holds to redeem.
func closedOp(ctx context.Context, f *scenarioFlags, c *load.Client) (func(context.Context, int64) bool, int64, error) {
	prefix := f.prefix
	if prefix == "" {
		prefix = fmt.Sprintf("Q%x", time.Now().UnixNano()&0xffffffffff)
	}
	switch f.op {
	case "check":
		return func(ctx context.Context, i int64) bool {
			return c.Check(ctx, prefix+"-c"+strconv.FormatInt(i, 10), load.CreditCard, nil, http.StatusCreated).OK
		}, 0, nil
	case "ping":
		return func(ctx context.Context, _ int64) bool {
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
		return func(ctx context.Context, i int64) bool {
			return c.RedeemToken(ctx, load.CreditCard, holds[i].Token, nil, http.StatusCreated).OK
		}, int64(len(holds)), nil
	}
	return nil, 0, fmt.Errorf("closed: -op %q: want check, redeem or ping", f.op)
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
