package load

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 60 s at 3 significant digits, so p99.9 is exact
// to 0.1% anywhere in the range.
const (
	histMin    = 1
	histMax    = int64(60 * time.Second / time.Microsecond)
	histDigits = 3
)

// Recorder collects every request's latency and status, per endpoint name.
// It is safe for concurrent use.
type Recorder struct {
	mu        sync.Mutex
	endpoints map[string]*endpoint
	window    *hdrhistogram.Histogram // all endpoints since the last progress line
	failed    atomic.Int64            // requests whose status was not expected, or that failed in transport
	requests  atomic.Int64
	served    atomic.Int64 // answered with a status below 500
}

type endpoint struct {
	hist     *hdrhistogram.Histogram
	statuses map[int]int64
	errors   int64 // transport errors and timeouts
	failed   int64 // unexpected statuses
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{endpoints: map[string]*endpoint{}, window: newHist()}
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// Record adds one request to name's figures: status 0 with err set means a
// transport error; ok says whether the status was an expected one.
func (r *Recorder) Record(name string, d time.Duration, status int, err error, ok bool) {
	us := d.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	r.requests.Add(1)
	if err == nil && status < 500 {
		r.served.Add(1)
	}
	if !ok || err != nil {
		r.failed.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.endpoints[name]
	if e == nil {
		e = &endpoint{hist: newHist(), statuses: map[int]int64{}}
		r.endpoints[name] = e
	}
	_ = e.hist.RecordValue(us)
	_ = r.window.RecordValue(us)
	switch {
	case err != nil:
		e.errors++
	case !ok:
		e.failed++
	}
	if err == nil {
		e.statuses[status]++
	}
}

// Requests is how many requests were recorded.
func (r *Recorder) Requests() int64 { return r.requests.Load() }

// Served is how many requests were answered with a status below 500: the
// ones that reached the store (a 503 is arbiter shedding load before Redis).
func (r *Recorder) Served() int64 { return r.served.Load() }

// Failed is how many requests failed in transport or got an unexpected status.
func (r *Recorder) Failed() int64 { return r.failed.Load() }

// EndpointReport is one endpoint's figures. Latencies are milliseconds.
type EndpointReport struct {
	Count    int64            `json:"count"`
	Rate     float64          `json:"rate_per_s"`
	Mean     float64          `json:"mean_ms"`
	P50      float64          `json:"p50_ms"`
	P90      float64          `json:"p90_ms"`
	P99      float64          `json:"p99_ms"`
	P999     float64          `json:"p99_9_ms"`
	Max      float64          `json:"max_ms"`
	Statuses map[string]int64 `json:"statuses"`
	Errors   int64            `json:"transport_errors"`
	Failed   int64            `json:"unexpected_statuses"`
}

// Endpoints returns every endpoint's figures, rates over elapsed.
func (r *Recorder) Endpoints(elapsed time.Duration) map[string]EndpointReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]EndpointReport, len(r.endpoints))
	for name, e := range r.endpoints {
		h := e.hist
		rep := EndpointReport{
			Count: h.TotalCount(), Mean: h.Mean() / 1000,
			P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
			P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
			Statuses: map[string]int64{}, Errors: e.errors, Failed: e.failed,
		}
		if elapsed > 0 {
			rep.Rate = float64(rep.Count) / elapsed.Seconds()
		}
		for s, n := range e.statuses {
			rep.Statuses[strconv.Itoa(s)] = n
		}
		out[name] = rep
	}
	return out
}

func ms(us int64) float64 { return float64(us) / 1000 }

// Progress writes one line per second to w until stop is closed: elapsed
// time, request rate over the last second, p99 over the last second,
// failures, in-flight iterations and dropped arrivals so far.
func (r *Recorder) Progress(w io.Writer, label string, inFlight *atomic.Int64, dropped func() int64, stop <-chan struct{}) {
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		n := r.requests.Load()
		r.mu.Lock()
		p99 := ms(r.window.ValueAtQuantile(99))
		r.window.Reset()
		r.mu.Unlock()
		var drop int64
		if dropped != nil {
			drop = dropped()
		}
		fmt.Fprintf(w, "%s t=%3.0fs req/s=%6d p99(1s)=%7.2fms failed=%d in-flight=%d dropped=%d\n",
			label, time.Since(start).Seconds(), n-last, p99, r.failed.Load(), inFlight.Load(), drop)
		last = n
	}
}

// Table renders endpoint figures as a fixed-width text table, endpoints sorted by name.
func Table(eps map[string]EndpointReport) string {
	names := make([]string, 0, len(eps))
	for n := range eps {
		names = append(names, n)
	}
	slices.Sort(names)
	s := fmt.Sprintf("%-12s %8s %8s %8s %8s %8s %8s %8s  %s\n", "endpoint", "count", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "statuses")
	for _, n := range names {
		e := eps[n]
		st := ""
		codes := make([]string, 0, len(e.Statuses))
		for c := range e.Statuses {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			st += fmt.Sprintf("%s:%d ", c, e.Statuses[c])
		}
		if e.Errors > 0 {
			st += fmt.Sprintf("err:%d", e.Errors)
		}
		s += fmt.Sprintf("%-12s %8d %8.0f %8.2f %8.2f %8.2f %8.2f %8.2f  %s\n", n, e.Count, e.Rate, e.P50, e.P90, e.P99, e.P999, e.Max, st)
	}
	return s
}
