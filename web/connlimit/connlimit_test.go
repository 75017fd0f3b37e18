package connlimit_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/web/connlimit"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// server serves / (204) and /block (until release is closed) behind a
// Limiter of max connections.
func server(tb testing.TB, max int, clock *fakeClock) (addr string, l *connlimit.Limiter, closed *sync.Map, release, started chan struct{}) {
	tb.Helper()
	closed = &sync.Map{}
	release = make(chan struct{})
	l = &connlimit.Limiter{Max: max, Now: clock.now, OnClose: func(r string) {
		n, _ := closed.LoadOrStore(r, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	started = make(chan struct{}, 16)
	srv := &http.Server{ConnState: l.ConnState, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			started <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), l, closed, release, started
}

func dial(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// get sends GET path on c (keep-alive) and returns the status, or an
// error when the server closed the connection.
func get(c net.Conn, path string) (int, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// settle waits until the limiter counts n open connections: the server
// sees a connection's state change after the client's call returned.
func settle(tb testing.TB, l *connlimit.Limiter, n int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open() != n {
		if time.Now().After(deadline) {
			tb.Fatalf("open = %d, want %d", l.Open(), n)
		}
		time.Sleep(time.Millisecond) // the server's goroutines report asynchronously
	}
}

func count(m *sync.Map, reason string) int {
	if n, ok := m.Load(reason); ok {
		return int(n.(*atomic.Int64).Load())
	}
	return 0
}

func TestLimiter(t *testing.T) {
	t.Run("idle keep-alive connections make room", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1e9, 0)}
		addr, l, closed, _, _ := server(t, 2, clock)
		a, b := dial(t, addr), dial(t, addr)
		for i, c := range []net.Conn{a, b} {
			if st, err := get(c, "/"); err != nil || st != 204 {
				t.Fatalf("get = %d, %v", st, err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for l.Idle() != i+1 {
				if time.Now().After(deadline) {
					t.Fatalf("idle = %d, want %d", l.Idle(), i+1)
				}
				time.Sleep(time.Millisecond) // the server marks a connection idle after the client read its answer
			}
			clock.add(time.Second)
		}
		c := dial(t, addr)
		if st, err := get(c, "/"); err != nil || st != 204 {
			t.Fatalf("third connection at the cap: %d, %v; want served", st, err)
		}
		if got := count(closed, connlimit.ClosedIdle); got != 1 {
			t.Fatalf("closed idle = %d, want 1", got)
		}
		if _, err := get(a, "/"); err == nil {
			t.Fatal("the longest idle connection is still open")
		}
	})

	t.Run("silent connections go first, then idle ones, then new ones", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1e9, 0)}
		addr, l, closed, release, started := server(t, 3, clock)
		defer close(release)
		silent := dial(t, addr)
		settle(t, l, 1)
		clock.add(connlimit.DefaultNewGrace)
		idle := dial(t, addr)
		if st, err := get(idle, "/"); err != nil || st != 204 {
			t.Fatalf("get = %d, %v", st, err)
		}
		young := dial(t, addr)
		settle(t, l, 3)
		for l.Idle() != 1 {
			time.Sleep(time.Millisecond) // the server marks a connection idle after the client read its answer
		}
		for i, want := range []string{connlimit.ClosedSilent, connlimit.ClosedIdle, connlimit.ClosedNew} {
			c := dial(t, addr)
			go get(c, "/block") // busy until release: never a victim itself
			<-started
			if got := count(closed, want); got != 1 {
				t.Fatalf("after connection %d over the cap, closed %s = %d, want 1", i, want, got)
			}
		}
		for _, c := range []net.Conn{silent, idle, young} {
			if _, err := get(c, "/"); err == nil {
				t.Fatal("a connection closed for the cap still answers")
			}
		}
	})

	t.Run("a busy connection is never closed", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1e9, 0)}
		addr, _, closed, release, started := server(t, 1, clock)
		busy := dial(t, addr)
		done := make(chan error, 1)
		go func() { _, err := get(busy, "/block"); done <- err }()
		<-started // in its handler: StateActive
		clock.add(time.Hour)
		if _, err := get(dial(t, addr), "/"); err == nil {
			t.Fatal("served over the cap of 1 while the one connection was busy")
		}
		if got := count(closed, connlimit.ClosedIncoming); got != 1 {
			t.Fatalf("closed incoming = %d, want 1", got)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("the busy request failed: %v", err)
		}
	})
}
