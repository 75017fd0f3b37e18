package redisstore_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// lossyConn delivers every write but, when armed, loses the reply to the
// next script or function call: its read fails with EOF, as when a master dies after
// running the script and before its answer reaches the client.
type lossyConn struct {
	net.Conn
	armed *atomic.Bool
	lose  bool
}

func (c *lossyConn) Write(b []byte) (int, error) {
	lower := bytes.ToLower(b)
	if (bytes.Contains(lower, []byte("evalsha")) || bytes.Contains(lower, []byte("fcall"))) && c.armed.CompareAndSwap(true, false) {
		c.lose = true
	}
	return c.Conn.Write(b)
}

func (c *lossyConn) Read(b []byte) (int, error) {
	if c.lose {
		c.lose = false
		time.Sleep(50 * time.Millisecond) // let the script finish on the server; its reply is lost
		c.Conn.Close()
		return 0, io.EOF
	}
	return c.Conn.Read(b)
}

// TestNoResendOfAScriptThatMayHaveRun: a cluster client resends a command
// after a transport error. For a script that did run, the resend would run
// it twice, and a check would answer hold_exists for its own hold (seen in
// a failover test). The store must surface the lost reply as unavailable
// instead, and the server must have run the script once; autopipelined
// too.
func TestNoResendOfAScriptThatMayHaveRun(t *testing.T) {
	for _, opts := range []redisstore.Options{{}, {AutoPipeline: true}} {
		t.Run(map[bool]string{false: "alone", true: "autopipelined"}[opts.AutoPipeline], func(t *testing.T) {
			testNoResend(t, opts)
		})
	}
}

func testNoResend(t *testing.T, opts redisstore.Options) {
	c := sharedCluster(t)
	var armed atomic.Bool
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: c.Addrs(),
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &lossyConn{Conn: conn, armed: &armed}, nil
		},
	})
	t.Cleanup(func() { rdb.Close() })
	s := redisstore.New(rdb, opts)
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}

	armed.Store(true)
	_, _, err := s.Hold(ctx, holdRequest(t, "L-1", "credit_card", time.Now()))
	wantReason(t, err, validation.ReasonUnavailable)

	// The script ran once: the hold is there, placed by that one call.
	cust, err := s.Customer(ctx, "L-1", time.Now())
	if err != nil || cust.Hold == nil {
		t.Fatalf("customer = %+v, %v; want the hold the lost call placed", cust, err)
	}
	events, err := s.Audit(ctx, "L-1", 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Type != validation.EventChecked {
		t.Fatalf("audit = %+v; want exactly one checked event (a resend would add a refusal)", events)
	}
}
