// Package load drives arbiter's HTTP API with an open workload model and
// records what it saw: per-endpoint latency histograms (HdrHistogram),
// status counts, and the exclusivity invariant of every customer touched.
//
// The model is open, as in k6's constant-arrival-rate executor: iterations
// start on a fixed schedule whatever the service's latency, so a slow server
// builds a queue (and, past MaxInFlight, dropped iterations) instead of
// silently slowing the load down, which a closed loop would do and which
// would hide the latency a real arrival stream sees.
package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Plan is one open-model run: Rate iterations per second for Duration.
type Plan struct {
	Rate     float64       // iterations started per second; must be > 0
	Duration time.Duration // how long iterations keep starting
	// MaxInFlight bounds concurrent iterations (k6's maxVUs); an arrival
	// that finds them all busy is dropped and counted. Default 1000.
	MaxInFlight int
	// Tick is how often the scheduler wakes to start the iterations that are
	// due; default 1ms.
	Tick time.Duration
}

// Iteration is one arrival: i counts from 0 in schedule order.
type Iteration func(ctx context.Context, i int64)

// Outcome is what the scheduler did.
type Outcome struct {
	Started int64         // iterations started
	Dropped int64         // arrivals dropped because MaxInFlight iterations were running
	MaxLag  time.Duration // the latest an iteration started after its scheduled time
	Elapsed time.Duration // from the first arrival until the last iteration finished
}

// Run starts iterations on the plan's schedule and returns when the last one
// has finished (or ctx is done and the running ones returned). inFlight, when
// not nil, is kept equal to the number of running iterations.
func Run(ctx context.Context, p Plan, inFlight *atomic.Int64, it Iteration) Outcome {
	if p.MaxInFlight <= 0 {
		p.MaxInFlight = 1000
	}
	if p.Tick <= 0 {
		p.Tick = time.Millisecond
	}
	if inFlight == nil {
		inFlight = new(atomic.Int64)
	}
	interval := time.Duration(float64(time.Second) / p.Rate)
	total := int64(p.Duration / interval)
	slots := make(chan struct{}, p.MaxInFlight)
	var (
		wg  sync.WaitGroup
		out Outcome
	)
	start := time.Now()
	ticker := time.NewTicker(p.Tick)
	defer ticker.Stop()
	var next int64
	for next < total {
		now := time.Now()
		// Start every arrival that is due by now, in order.
		for ; next < total; next++ {
			due := start.Add(time.Duration(next) * interval)
			if due.After(now) {
				break
			}
			if lag := now.Sub(due); lag > out.MaxLag {
				out.MaxLag = lag
			}
			select {
			case slots <- struct{}{}:
			default:
				out.Dropped++
				continue
			}
			out.Started++
			inFlight.Add(1)
			wg.Add(1)
			go func(i int64) {
				defer func() { <-slots; inFlight.Add(-1); wg.Done() }()
				it(ctx, i)
			}(next)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			out.Elapsed = time.Since(start)
			return out
		case <-ticker.C:
		}
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	return out
}
