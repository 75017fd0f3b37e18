package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
// commandstats), and every one of them succeeds once.
func TestAutoPipelinedCommandsPerRequest(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	hook := &batchCounter{}
	rdb.AddHook(hook)
	s := pipelinedStore(t, rdb, redisstore.Options{})
	ctx := context.Background()
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
				if _, replayed, err := redeemToken(s, c, "card-service", time.Now()); err != nil || replayed {
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

// batchCounter counts the commands a client sends, and its pipelines of
// more than one command.
type batchCounter struct{ cmds, batches atomic.Int64 }

func (c *batchCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *batchCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (c *batchCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.cmds.Add(int64(len(cmds)))
		if len(cmds) > 1 {
			c.batches.Add(1)
		}
		return next(ctx, cmds)
	}
}
