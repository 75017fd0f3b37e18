package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The contract suite runs with the scripts' calls autopipelined too, on a
// single node (here) and on the cluster (pipelineClusterBackend).
func init() {
	backends["redis-autopipeline"] = func(tb testing.TB) backend {
		srv := redistest.MustStartRedis(tb)
		rdb := srv.Client(tb)
		return backend{store: pipelinedStore(tb, rdb, redisstore.Options{}), rdb: rdb, expire: waitHoldGone(rdb)}
	}
	backends["cluster-autopipeline"] = func(tb testing.TB) backend {
		b := clusterBackend(tb, redisstore.Options{})
		b.store = pipelinedStore(tb, b.rdb, redisstore.Options{})
		return b
	}
}

// pipelinedStore is redisstore.New with Options.AutoPipeline, failing tb
// when the store did not get an autopipeliner.
func pipelinedStore(tb testing.TB, rdb redis.UniversalClient, opts redisstore.Options) *redisstore.Store {
	tb.Helper()
	opts.AutoPipeline = true
	s := redisstore.New(rdb, opts)
	if !s.AutoPipelined() {
		tb.Fatal("AutoPipeline: the store sends its calls alone")
	}
	return s
}

// TestAutoPipelinedCommandsPerRequest pins the cost model under
// concurrency, where the autopipeliner batches: every check and every
// redemption is still exactly one script command, counted by the client
// (its hooks see each command of a batch) and by the server (INFO
// commandstats), and every one of them succeeds once. No script call may
// bypass the autopipeliner: the requests' context carries a mark, and the
// autopipeliner runs its batches on a context of its own (a batch of one
// reaches ProcessHook too, so the hook tells them apart by context, not by
// which hook sees the command).
func TestAutoPipelinedCommandsPerRequest(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	hook := &batchCounter{}
	rdb.AddHook(hook)
	s := pipelinedStore(t, rdb, redisstore.Options{})
	ctx := context.WithValue(context.Background(), requestMark{}, true)
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	warmUp(t, s)
	const workers, cycles = 16, 20
	before, stats := hook.cmds.Load(), srv.CommandStats(t)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles {
				customer := fmt.Sprintf("P-%d-%d", w, i)
				c, _, err := s.Hold(ctx, holdRequest(t, customer, "credit_card", time.Now()))
				if err != nil {
					t.Errorf("check %s: %v", customer, err)
					return
				}
				_, replayed, err := s.Redeem(ctx, validation.RedeemRequest{
					Rule: rule(nil, c.Product), CustomerID: c.CustomerID, CheckID: c.ID,
					Actor: "card-service", Now: time.Now(), MaxAttempts: 5,
				})
				if err != nil || replayed {
					t.Errorf("redeem %s: replayed %v, %v", customer, replayed, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	after := srv.CommandStats(t)
	const requests = workers * cycles * 2
	if got := hook.cmds.Load() - before; got != requests {
		t.Errorf("client sent %d commands for %d requests", got, requests)
	}
	script := func(m map[string]int64) int64 { return m["fcall"] + m["evalsha"] + m["eval"] }
	if got := script(after) - script(stats); got != requests {
		t.Errorf("server ran %d script commands for %d requests", got, requests)
	}
	if got := hook.direct.Load(); got != 0 {
		t.Errorf("%d script commands were sent on the request's context, bypassing the autopipeliner", got)
	}
	t.Logf("%d requests in %d batches of more than one command (timing decides how many)", requests, hook.batches.Load())
}

// warmUp reads a customer through s, so that the connection its calls
// take is open: go-redis's hooks see a new connection's handshake
// (HELLO, CLIENT SETINFO), and the autopipeliner's batches ride a pool of
// their own.
func warmUp(tb testing.TB, s *redisstore.Store) {
	tb.Helper()
	if _, err := s.Customer(context.Background(), "warm-up", time.Now()); err != nil {
		tb.Fatal(err)
	}
}

// requestMark marks the context of the requests whose script calls must
// go through the autopipeliner.
type requestMark struct{}

// batchCounter counts the commands a client sends, its pipelines of more
// than one command, and the script commands sent on a marked context
// (requestMark): those did not go through the autopipeliner.
type batchCounter struct{ cmds, batches, direct atomic.Int64 }

func (c *batchCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *batchCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		c.countDirect(ctx, cmd)
		return next(ctx, cmd)
	}
}
func (c *batchCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.cmds.Add(int64(len(cmds)))
		for _, cmd := range cmds {
			c.countDirect(ctx, cmd)
		}
		if len(cmds) > 1 {
			c.batches.Add(1)
		}
		return next(ctx, cmds)
	}
}

// BenchmarkAutoPipeline compares the scripts' calls sent alone and
// autopipelined through validation.Service, as the HTTP handlers call it:
// on loopback with 50 workers and through a simulated 1 ms round trip
// (every write waits 1 ms) with 16. Besides ns/op (wall time per
// operation across the workers: 1e9 / throughput) it reports, per
// operation, this process's CPU (service, store, go-redis), redis-server's
// CPU (INFO cpu: its getrusage) and the script commands Redis ran (INFO
// commandstats). Run it with -count N: each count runs every case once,
// so the two modes alternate and a noisy neighbour hurts both alike.
func BenchmarkAutoPipeline(b *testing.B) {
	srv := redistest.MustStartRedis(b)
	for _, link := range []struct {
		name    string
		workers int
		rtt     time.Duration
	}{{"loopback-50", 50, 0}, {"rtt1ms-16", 16, time.Millisecond}} {
		for _, op := range []string{"check", "check+redeem"} {
			for _, piped := range []bool{false, true} {
				name := link.name + "/" + op + "/" + map[bool]string{false: "alone", true: "autopipelined"}[piped]
				b.Run(name, func(b *testing.B) { benchService(b, srv, link.workers, link.rtt, op, piped) })
			}
		}
	}
}

var benchSeq atomic.Int64

func benchService(b *testing.B, srv *redistest.Server, workers int, rtt time.Duration, op string, piped bool) {
	opts := &redis.Options{Addr: srv.Addr, PoolSize: workers + 10}
	if rtt > 0 {
		opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			return slowConn{Conn: c, rtt: rtt}, err
		}
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	s := redisstore.New(rdb, redisstore.Options{AutoPipeline: piped})
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		b.Fatal(err)
	}
	svc := &validation.Service{Store: s, Policy: validation.DefaultPolicy()}
	actor := validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}}
	run := func(customer string) error {
		c, _, err := svc.Check(ctx, actor, validation.CheckInput{CustomerID: customer, Product: "credit_card"})
		if err == nil && op == "check+redeem" {
			_, _, err = svc.RedeemToken(ctx, actor, customer, "credit_card", c.ID, validation.TokenProof{Secret: validation.TokenSecret(c.Secret)})
		}
		return err
	}
	prefix := fmt.Sprintf("AP%d", benchSeq.Add(1))
	for i := range workers { // open the connections outside the measurement
		if err := run(fmt.Sprintf("%s-warm-%d", prefix, i)); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	b.SetParallelism((workers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	cpu0, redis0, stats0 := selfCPU(b), redisCPU(b, srv), srv.CommandStats(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := run(fmt.Sprintf("%s-%d", prefix, seq.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	n := float64(b.N)
	stats := srv.CommandStats(b)
	script := func(m map[string]int64) int64 { return m["fcall"] + m["evalsha"] + m["eval"] }
	b.ReportMetric((selfCPU(b)-cpu0).Seconds()*1e6/n, "client-cpu-µs/op")
	b.ReportMetric((redisCPU(b, srv)-redis0).Seconds()*1e6/n, "redis-cpu-µs/op")
	b.ReportMetric(float64(script(stats)-script(stats0))/n, "scripts/op")
}

// slowConn makes every write wait rtt first: loopback made to cost a
// network round trip (go-redis writes a command, or a whole pipeline, in
// one write), as arbiter-load storebench -rtt does.
type slowConn struct {
	net.Conn
	rtt time.Duration
}

func (c slowConn) Write(b []byte) (int, error) {
	time.Sleep(c.rtt)
	return c.Conn.Write(b)
}

// selfCPU is this process's user and system CPU so far.
func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is redis-server's user and system CPU so far (INFO cpu).
func redisCPU(tb testing.TB, srv *redistest.Server) time.Duration {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

func (c *batchCounter) countDirect(ctx context.Context, cmd redis.Cmder) {
	switch cmd.Name() {
	case "fcall", "evalsha", "eval":
		if ctx.Value(requestMark{}) != nil {
			c.direct.Add(1)
		}
	}
}
