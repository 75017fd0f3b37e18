package bureau_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/bureau"
)

// fakeBureau is a rating provider whose behaviour a test switches.
type fakeBureau struct {
	mu    sync.Mutex
	mode  string // ok, slow, fail, badjson, outofrange
	score int
	calls atomic.Int64
	srv   *httptest.Server
}

func newFakeBureau(tb testing.TB) *fakeBureau {
	tb.Helper()
	f := &fakeBureau{mode: "ok", score: 700}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.mu.Lock()
		mode, score := f.mode, f.score
		f.mu.Unlock()
		switch mode {
		case "slow":
			select { // slower than any timeout under test, but ends with the request
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		case "fail":
			http.Error(w, "down", http.StatusInternalServerError)
			return
		case "badjson":
			io.WriteString(w, `{"score":`)
			return
		case "outofrange":
			io.WriteString(w, `{"score":1001}`)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/v1/ratings/") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"score":%d}`, score)
	}))
	tb.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBureau) set(mode string) {
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
}

func (f *fakeBureau) config() validation.RatingConfig {
	c := validation.RatingConfig{URL: f.srv.URL + "/v1/ratings/{customer_id}", Timeout: 200 * time.Millisecond}
	c.Breaker.Failures, c.Breaker.Cooldown = 3, 300*time.Millisecond
	return c
}

func TestRating(t *testing.T) {
	f := newFakeBureau(t)
	c := bureau.New(f.config(), nil)
	got, err := c.Rating(context.Background(), "C-1")
	if err != nil || got != 700 {
		t.Fatalf("Rating = %d, %v; want 700", got, err)
	}
}

func TestUnavailableAnswers(t *testing.T) {
	for _, mode := range []string{"fail", "badjson", "outofrange", "slow"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeBureau(t)
			f.set(mode)
			cfg := f.config()
			c := bureau.New(cfg, nil)
			start := time.Now()
			_, err := c.Rating(context.Background(), "C-1")
			if !errors.Is(err, bureau.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			// A slow bureau costs at most the timeout plus a small margin.
			if d := time.Since(start); d > cfg.Timeout+250*time.Millisecond {
				t.Fatalf("Rating took %v with a %v timeout", d, cfg.Timeout)
			}
		})
	}
}

func TestBreakerOpensAndCloses(t *testing.T) {
	f := newFakeBureau(t)
	f.set("fail")
	c := bureau.New(f.config(), nil)
	for i := 0; i < 3; i++ {
		if _, err := c.Rating(context.Background(), fmt.Sprintf("C-%d", i)); err == nil {
			t.Fatal("a failing bureau answered")
		}
	}
	if got, want := c.State(), "open"; got != want {
		t.Fatalf("breaker = %s after 3 failures, want %s", got, want)
	}
	// Open: refused at once, without calling the bureau.
	calls := f.calls.Load()
	start := time.Now()
	if _, err := c.Rating(context.Background(), "C-9"); !errors.Is(err, bureau.ErrUnavailable) {
		t.Fatalf("open breaker: err = %v", err)
	}
	if f.calls.Load() != calls {
		t.Fatal("an open breaker still called the bureau")
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("an open breaker took %v to refuse", d)
	}
	// After the cooldown one probe goes through; the bureau is back, so it closes.
	f.set("ok")
	deadline := time.Now().Add(5 * time.Second)
	for c.State() != "half-open" { // the cooldown is real time, the subject here
		if time.Now().After(deadline) {
			t.Fatal("breaker never became half-open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := c.Rating(context.Background(), "C-9"); err != nil || got != 700 {
		t.Fatalf("probe = %d, %v", got, err)
	}
	if got, want := c.State(), "closed"; got != want {
		t.Fatalf("breaker = %s after a good probe, want %s", got, want)
	}
}

// blockingTransport holds every request until released, inside a synctest
// bubble, so the test knows when all callers are waiting.
type blockingTransport struct {
	release chan struct{}
	calls   atomic.Int64
}

func (b *blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.calls.Add(1)
	<-b.release
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"score":640}`)), Header: http.Header{}, Request: r}, nil
}

func TestConcurrentMissesCollapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &blockingTransport{release: make(chan struct{})}
		cfg := validation.RatingConfig{URL: "http://bureau.test/v1/ratings/{customer_id}", Timeout: time.Minute}
		c := bureau.New(cfg, &http.Client{Transport: tr})
		var wg sync.WaitGroup
		scores := make([]int, 20)
		for i := range scores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				scores[i], _ = c.Rating(context.Background(), "C-1")
			}()
		}
		synctest.Wait() // every caller is now blocked: one in the transport, the rest on the shared call
		if got := tr.calls.Load(); got != 1 {
			t.Fatalf("bureau calls = %d for 20 concurrent lookups, want 1", got)
		}
		close(tr.release)
		wg.Wait()
		for i, s := range scores {
			if s != 640 {
				t.Fatalf("caller %d got %d, want 640", i, s)
			}
		}
	})
}
