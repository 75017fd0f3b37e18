package redisstore_test

import (
	"testing"

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
