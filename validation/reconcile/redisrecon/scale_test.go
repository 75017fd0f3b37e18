package redisrecon_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// genFeed lists customers S-00000000 … S-(n-1) holding product, generated
// page by page, so the test's own memory does not count as the reconciler's.
type genFeed struct {
	product string
	n       int
}

func scaleCustomer(i int) string { return fmt.Sprintf("S-%08d", i) }

func (g genFeed) Page(ctx context.Context, after string, limit int) (reconcile.HoldingsPage, error) {
	start := 0
	if after != "" {
		i, err := strconv.Atoi(after[2:])
		if err != nil {
			return reconcile.HoldingsPage{}, err
		}
		start = i + 1
	}
	end := min(start+limit, g.n)
	p := reconcile.HoldingsPage{Holdings: make([]reconcile.Holding, 0, end-start)}
	for i := start; i < end; i++ {
		p.Holdings = append(p.Holdings, reconcile.Holding{CustomerID: scaleCustomer(i), Product: g.product, IssuedAt: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	if end < g.n {
		p.Next = scaleCustomer(end - 1)
	}
	return p, nil
}

// TestReconcileScale measures a reconciliation of ARBITER_RECON_SCALE card
// holdings on a real redis-server (skipped without it): an onboarding run
// that imports half of them, then a steady-state run that finds nothing,
// each with holdings/s, Redis commands per holding and the Go heap's peak
// above its level before the run. docs/benchmarks.md quotes it.
func TestReconcileScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ARBITER_RECON_SCALE"))
	if n <= 0 {
		t.Skip("set ARBITER_RECON_SCALE=100000 to measure")
	}
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	f := newRecon(t, rdb, genFeed{"credit_card", n}, genFeed{"personal_loan", 0}, validation.OnOrphanReport)
	f.rec.Config.PageSize = 500
	f.rec.Batch = 0 // the default
	ctx := context.Background()

	// Half the customers are known to arbiter already.
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 2; i < n; i += 32 {
				if _, err := f.svc.Import(ctx, admin, scaleCustomer(i), "credit_card", time.Now().Add(-time.Hour)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d imports of the set-up failed", failed.Load())
	}
	t.Logf("set-up: %d grants in %v", (n+1)/2, time.Since(start).Round(time.Millisecond))

	for _, phase := range []struct {
		name    string
		imports int
	}{{"onboarding", n / 2}, {"steady state", 0}} {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		cmdsBefore := srv.CommandStats(t)
		t0 := time.Now()
		run := f.reconcile(t)
		d := time.Since(t0)
		close(stop)
		<-sampled
		cmdsAfter := srv.CommandStats(t)
		var cmds int64
		for k, v := range cmdsAfter {
			cmds += v - cmdsBefore[k]
		}
		if got := run.Counts[reconcile.FindingImported]; got != phase.imports {
			t.Fatalf("%s: imported %d, want %d", phase.name, got, phase.imports)
		}
		heap := int64(peak.Load()) - int64(before.HeapInuse)
		t.Logf("%s: %d holdings in %v = %.0f holdings/s; %d Redis commands = %.2f per holding (evalsha %d, hvals %d, sadd %d, smismember %d, scan %d); Go heap peak +%.1f MiB over %.1f MiB",
			phase.name, n, d.Round(time.Millisecond), float64(n)/d.Seconds(), cmds, float64(cmds)/float64(n),
			cmdsAfter["evalsha"]-cmdsBefore["evalsha"], cmdsAfter["hvals"]-cmdsBefore["hvals"], cmdsAfter["sadd"]-cmdsBefore["sadd"],
			cmdsAfter["smismember"]-cmdsBefore["smismember"], cmdsAfter["scan"]-cmdsBefore["scan"],
			float64(heap)/(1<<20), float64(before.HeapInuse)/(1<<20))
	}

	// The seen set is the run's Redis-side memory per product: measure one.
	ids := make([]string, 0, 1000)
	for i := range n {
		if ids = append(ids, scaleCustomer(i)); len(ids) == cap(ids) || i == n-1 {
			if err := f.recon.MarkSeen(ctx, "measure", "credit_card", ids); err != nil {
				t.Fatal(err)
			}
			ids = ids[:0]
		}
	}
	usage, err := rdb.MemoryUsage(ctx, "arb:recon:run:measure:seen:credit_card", 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seen set of %d customers: %.1f MiB in Redis (%.0f bytes per customer)", n, float64(usage)/(1<<20), float64(usage)/float64(n))
}
