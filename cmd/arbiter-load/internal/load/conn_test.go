package load

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestConnClientKeepsOneConnection: a worker's client sends request after
// request on one connection, reads every answer (bodies and none), and
// dials again only after the server closed it.
func TestConnClientKeepsOneConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/checks":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"check_id":"chk_1","token":"t"}`))
		case "/close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	base := NewClient(srv.URL, DemoKeys, 1, time.Second, NewRecorder())
	c, err := base.ConnClient(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	ctx := context.Background()
	for i := range 5 {
		var out CheckResponse
		if r := c.Check(ctx, "C-1", CreditCard, &out, http.StatusCreated); !r.OK || out.CheckID != "chk_1" {
			t.Fatalf("check %d: %+v, body %+v", i, r, out)
		}
		if r := c.Do(ctx, "ping", http.MethodGet, "/v1/ping", "k", nil, nil, http.StatusNoContent); !r.OK {
			t.Fatalf("ping %d: %+v", i, r)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("10 requests opened %d connections, want 1", n)
	}
	if r := c.Do(ctx, "close", http.MethodGet, "/close", "k", nil, nil, http.StatusNoContent); !r.OK {
		t.Fatalf("close: %+v", r)
	}
	if r := c.Do(ctx, "ping", http.MethodGet, "/v1/ping", "k", nil, nil, http.StatusNoContent); !r.OK {
		t.Fatalf("ping after close: %+v", r)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("after the server closed the connection: %d connections, want 2", n)
	}
	https := NewClient("https://127.0.0.1:1", DemoKeys, 1, time.Second, NewRecorder())
	if _, err := https.ConnClient(time.Second); err == nil {
		t.Fatal("an https base URL was accepted")
	}
}

// TestConnClientEndsWithItsContext: a request whose context ends while the
// server has not answered returns then, not at the connection's deadline,
// and the next request dials again.
func TestConnClientEndsWithItsContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	defer close(release)
	c, err := NewClient(srv.URL, DemoKeys, 1, time.Minute, NewRecorder()).ConnClient(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() { done <- c.Do(ctx, "slow", http.MethodGet, "/slow", "k", nil, nil, http.StatusNoContent) }()
	cancel()
	select {
	case r := <-done:
		if r.OK || r.Err == nil {
			t.Fatalf("a request whose context ended = %+v; want its error", r)
		}
	case <-time.After(30 * time.Second): // the connection's deadline is a minute
		t.Fatal("a request whose context ended waited for the connection's deadline")
	}
	if r := c.Do(context.Background(), "ping", http.MethodGet, "/v1/ping", "k", nil, nil, http.StatusNoContent); !r.OK {
		t.Fatalf("the next request: %+v", r)
	}
}
