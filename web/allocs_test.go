package web

import (
	"net/http"
	"testing"
)

// TestAllocsPerRequest is a cost guard: it pins the heap allocations of a
// request through the whole handler (ServeHTTP, every middleware, the
// store on a real redis-server), so that a change which adds one to every
// request fails here rather than in a benchmark nobody reads. The limits
// are the figures measured when they were set, plus a small margin for
// go-redis, whose reads may allocate once more or less; lower them when
// a change lowers the figures. The race detector allocates on its own,
// so the guard does not run under -race.
func TestAllocsPerRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts; run without -race")
	}
	f := newStepsFixture(t)
	const runs = 200
	auth := []string{"Authorization", "Bearer " + stepsKey, "Content-Type", "application/json"}
	limits := []struct {
		name  string
		limit float64
		serve func(t *testing.T) func()
	}{
		{"ping", 5, func(t *testing.T) func() {
			w, q := newSink(), newRequest("GET", "/v1/ping", auth...)
			return func() { f.serve(t, w, q.reset(nil), http.StatusNoContent) }
		}},
		{"check", 135, func(t *testing.T) func() {
			w, q := newSink(), newRequest("POST", "/v1/checks", auth...)
			var buf []byte
			n := 1_000_000
			return func() {
				n++
				buf = checkBody(buf, n)
				f.serve(t, w, q.reset(buf), http.StatusCreated)
			}
		}},
		{"redeem", 159, func(t *testing.T) func() {
			toks := f.placeChecks(t, 2_000_000, runs+1)
			w, q := newSink(), newRequest("POST", "/v1/redemptions", auth...)
			var buf []byte
			i := 0
			return func() {
				buf = append(append(append(buf[:0], `{"token":"`...), toks[i]...), `"}`...)
				i++
				f.serve(t, w, q.reset(buf), http.StatusCreated)
			}
		}},
	}
	for _, l := range limits {
		t.Run(l.name, func(t *testing.T) {
			got := testing.AllocsPerRun(runs, l.serve(t))
			t.Logf("%s: %.0f allocations per request (limit %.0f)", l.name, got, l.limit)
			if got > l.limit {
				t.Errorf("%s: %.0f allocations per request, want at most %.0f", l.name, got, l.limit)
			}
		})
	}
}
