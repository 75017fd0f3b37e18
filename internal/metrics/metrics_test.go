package metrics_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/internal/metrics"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// gather reads m's registry into family name → family.
func gather(tb testing.TB, m *metrics.Set) map[string]*dto.MetricFamily {
	tb.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		tb.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return byName
}

// value returns the counter's or gauge's value, or the histogram's count,
// of the series of family name whose labels include want, summed; 0 when
// there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		switch {
		case !match:
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestBuildAndRuntime(t *testing.T) {
	fams := gather(t, metrics.New(nil))
	if value(fams, "arbiter_build_info", nil) != 1 {
		t.Error("arbiter_build_info is not 1")
	}
	if value(fams, "go_goroutines", nil) == 0 {
		t.Error("no Go runtime metrics")
	}
}

// TestMetricsRedisScriptsAndPool checks the hooks cmd/arbiter wires: the
// store's Observe and the pool's stats.
func TestMetricsRedisScriptsAndPool(t *testing.T) {
	m := metrics.New(nil)
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	store := redisstore.New(rdb, redisstore.Options{Observe: m.ObserveScript})
	m.ObservePool(func() metrics.PoolStats {
		s := rdb.PoolStats()
		return metrics.PoolStats{Hits: uint64(s.Hits), Misses: uint64(s.Misses), Timeouts: uint64(s.Timeouts),
			TotalConns: uint64(s.TotalConns), IdleConns: uint64(s.IdleConns), StaleConns: uint64(s.StaleConns)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		if _, err := store.Customer(ctx, "C-m-9", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	srv.Kill()
	if _, err := store.Customer(ctx, "C-m-9", time.Now()); err == nil {
		t.Fatal("Customer on a dead Redis succeeded")
	}
	byName := gather(t, m)
	if got := value(byName, "arbiter_redis_script_duration_seconds", map[string]string{"script": "customer", "outcome": "ok"}); got != 3 {
		t.Errorf("customer script ok count = %v, want 3", got)
	}
	if got := value(byName, "arbiter_redis_script_duration_seconds", map[string]string{"script": "customer", "outcome": "error"}); got != 1 {
		t.Errorf("customer script error count = %v, want 1", got)
	}
	if got := value(byName, "arbiter_redis_pool_requests_total", map[string]string{"result": "miss"}); got < 1 {
		t.Errorf("pool misses = %v, want ≥ 1 (the first connection was dialled)", got)
	}
	if _, ok := byName["arbiter_redis_pool_connections"]; !ok {
		t.Error("no arbiter_redis_pool_connections")
	}
}

// TestMetricsHoldExpiries: an expired hold is counted once, when the
// customer's next operation settles it (the store's OnExpiry hook, as
// cmd/arbiter wires it).
func TestMetricsHoldExpiries(t *testing.T) {
	m := metrics.New(nil)
	mr := redistest.MustStartMiniredis(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	store := redisstore.New(rdb, redisstore.Options{OnExpiry: m.HoldExpired})
	svc := &validation.Service{Store: store, Policy: validation.DefaultPolicy()}
	ctx := context.Background()
	actor := validation.Actor{ID: "branch-portal", Roles: []validation.Role{validation.RoleChecker}}
	if _, _, err := svc.Check(ctx, actor, validation.CheckInput{CustomerID: "C-x", Product: "credit_card"}); err != nil {
		t.Fatal(err)
	}
	expiries := func() float64 {
		t.Helper()
		return value(gather(t, m), "arbiter_hold_expiries_total", nil)
	}
	if got := expiries(); got != 0 {
		t.Fatalf("expiries = %v while the hold lives", got)
	}
	mr.FastForward(10 * time.Minute) // past the 5 min hold TTL
	for range 2 {
		if _, err := svc.Customer(ctx, "C-x"); err != nil {
			t.Fatal(err)
		}
	}
	if got := expiries(); got != 1 {
		t.Fatalf("expiries = %v after two reads, want the one expiry counted once", got)
	}
}
