package load

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunStartsOnSchedule(t *testing.T) {
	var n atomic.Int64
	out := Run(context.Background(), Plan{Rate: 200, Duration: 500 * time.Millisecond}, nil, func(context.Context, int64) { n.Add(1) })
	if got, want := out.Started, int64(100); got != want {
		t.Fatalf("started = %d, want %d", got, want)
	}
	if got, want := n.Load(), int64(100); got != want {
		t.Fatalf("iterations run = %d, want %d", got, want)
	}
	if got := out.Dropped; got != 0 {
		t.Fatalf("dropped = %d, want 0", got)
	}
}

// An open model does not wait for slow iterations: with one slot held for
// the whole schedule, every later arrival is dropped, none delayed.
func TestRunDropsWhenSaturated(t *testing.T) {
	release := make(chan struct{})
	p := Plan{Rate: 200, Duration: 250 * time.Millisecond, MaxInFlight: 1}
	timer := time.AfterFunc(p.Duration+100*time.Millisecond, func() { close(release) })
	defer timer.Stop()
	out := Run(context.Background(), p, nil, func(context.Context, int64) { <-release })
	if got, want := out.Started, int64(1); got != want {
		t.Fatalf("started = %d, want %d", got, want)
	}
	if got, want := out.Dropped, int64(49); got != want {
		t.Fatalf("dropped = %d, want %d", got, want)
	}
}

func TestDeltaSplitsClientAndScriptCommands(t *testing.T) {
	before := map[string]int64{"evalsha": 10, "hset": 100, "info": 3}
	after := map[string]int64{"evalsha": 110, "eval": 1, "hset": 400, "hget": 200, "ping": 2, "client|setinfo": 4, "info": 5, "config|resetstat": 1}
	d := Delta(before, after, 100)
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"script calls", d.ScriptCalls, 101},
		{"eval fallbacks", d.EvalFallbacks, 1},
		{"client commands", d.ClientCommands, 107},
		{"in-script commands", d.InScript, 500},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if got, want := d.InScriptCommandsPerReq, 5.0; got != want {
		t.Errorf("in-script per request = %v, want %v", got, want)
	}
	if _, ok := d.Commands["info"]; ok {
		t.Error("the measurement's own INFO is counted")
	}
}

func TestRecorderPercentiles(t *testing.T) {
	r := NewRecorder()
	for i := 1; i <= 1000; i++ {
		r.Record("check", time.Duration(i)*time.Microsecond*10, 201, nil, true)
	}
	r.Record("check", time.Millisecond, 503, nil, false)
	e := r.Endpoints(time.Second)["check"]
	if got, want := e.Count, int64(1001); got != want {
		t.Fatalf("count = %d, want %d", got, want)
	}
	if e.P99 < 9.8 || e.P99 > 10.0 {
		t.Fatalf("p99 = %v ms, want about 9.9", e.P99)
	}
	if got, want := e.Statuses["503"], int64(1); got != want {
		t.Fatalf("503s = %d, want %d", got, want)
	}
	if got, want := r.Failed(), int64(1); got != want {
		t.Fatalf("failed = %d, want %d", got, want)
	}
}
