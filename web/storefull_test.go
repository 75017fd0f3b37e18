package web_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/web"
)

// fakeClock is a web.Config.Now that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withNow(now func() time.Time) apiOption {
	return func(cfg *web.Config, _ *string) { cfg.Now = now }
}

// logLines returns the JSON log lines whose message contains msg.
func logLines(tb testing.TB, logs, msg string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			tb.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m, _ := l["msg"].(string); strings.Contains(m, msg) {
			out = append(out, l)
		}
	}
	return out
}

// TestStoreFull: with Redis at its maxmemory (noeviction), a check is a 503
// store_full with Retry-After, counted in arbiter_store_full_total and
// logged once per minute however many requests are refused; /readyz stays
// 200 and says so; a redemption of a hold placed before still succeeds.
// Every answer is checked against openapi.yaml.
func TestStoreFull(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	a := newAPI(t, withNow(clock.Now))
	a.client.Transport = validateAgainstSpec(t, a.client.Transport) // the answers are the documented ones
	token := a.mustCheck(t, "C-full-0", "credit_card").str("token")
	a.redis.FillToMaxmemory(t)

	const refused = 5
	for i := 1; i <= refused; i++ {
		r := a.check(t, checkerKey, fmt.Sprintf("C-full-%d", i), "credit_card")
		wantStatus(t, r, http.StatusServiceUnavailable, validation.ReasonStoreFull)
		if got, want := r.header.Get("Retry-After"), "10"; got != want {
			t.Fatalf("Retry-After = %q, want %q", got, want)
		}
	}
	lines := logLines(t, a.logs.String(), "redis is full")
	if got, want := len(lines), 1; got != want {
		t.Fatalf("%d requests refused gave %d store-full log lines, want %d:\n%s", refused, got, want, a.logs)
	}
	if got := logLines(t, a.logs.String(), "request failed"); len(got) != 0 {
		t.Fatalf("store-full refusals logged per request: %v", got)
	}

	ready := a.do(t, "GET", "/readyz", "", nil)
	wantStatus(t, ready, http.StatusOK)
	if got, want := ready.str("store"), "full"; got != want {
		t.Fatalf("/readyz store = %q, want %q: %s", got, want, ready.raw)
	}
	resp, err := a.client.Get(a.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`arbiter_store_full_total{route="/v1/checks"} %d`, refused); !strings.Contains(string(metrics), want) {
		t.Fatalf("/metrics lacks %s", want)
	}

	// A minute on, the next refusal is logged with the count it stands for.
	clock.Advance(time.Minute)
	wantStatus(t, a.check(t, checkerKey, "C-full-9", "credit_card"), http.StatusServiceUnavailable, validation.ReasonStoreFull)
	lines = logLines(t, a.logs.String(), "redis is full")
	if got, want := len(lines), 2; got != want {
		t.Fatalf("store-full log lines after a minute = %d, want %d", got, want)
	}
	if got, want := lines[1]["suppressed"], float64(refused-1); got != want {
		t.Fatalf("second line suppressed = %v, want %v: %v", got, want, lines[1])
	}

	// A redemption of a hold placed before deletes the hold first: Redis
	// lets it write the grant.
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": token}), http.StatusCreated)

	// Without refusals for a minute, /readyz stops reporting a full store.
	clock.Advance(time.Minute)
	if r := a.do(t, "GET", "/readyz", "", nil); r.status != http.StatusOK || r.str("store") != "" {
		t.Fatalf("/readyz a minute after the last refusal = %d %s, want 200 without store", r.status, r.raw)
	}
}
