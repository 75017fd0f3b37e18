package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/web"
)

// BenchmarkCheckAndRedeem measures a check followed by a token redemption
// over HTTP against a real redis-server, from parallel clients (one
// customer per iteration, so nothing is refused). Compare it with
// BenchmarkCheck to see the redemption's share, and with the EVALSHA
// ceiling in BENCHMARKS.md for the ratio that matters.
//
//	go test -run '^$' -bench 'Check' -benchtime 5s ./web/
func BenchmarkCheckAndRedeem(b *testing.B) {
	benchmarkFlow(b, true)
}

// BenchmarkCheck measures checks alone (each on a fresh customer).
func BenchmarkCheck(b *testing.B) {
	benchmarkFlow(b, false)
}

// BenchmarkCheckTracing measures the cost of tracing a check: off (no
// TracerProvider: no instrumentation installed, as arbiter runs without
// OTEL_EXPORTER_OTLP_ENDPOINT) against on, with every request sampled
// (always_on), a server span and a Redis span each, batched to an exporter
// that discards them, so the figure is the instrumentation's own cost; and
// "unsampled", instrumented but sampling nothing (always_off, or a low
// traceidratio's typical request).
//
//	go test -run '^$' -bench CheckTracing -benchtime 5s -count 3 ./web/
func BenchmarkCheckTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchmarkFlow(b, false) })
	b.Run("on", func(b *testing.B) { benchmarkTraced(b, sdktrace.AlwaysSample()) })
	b.Run("unsampled", func(b *testing.B) { benchmarkTraced(b, sdktrace.NeverSample()) })
}

// benchmarkTraced is benchmarkFlow with arbiter's instrumentation on: the
// server's and, as cmd/arbiter sets it up, the Redis client's.
func benchmarkTraced(b *testing.B, sampler sdktrace.Sampler) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	rdb := redistest.MustStartRedis(b).Client(b)
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tp),
		redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
		b.Fatal(err)
	}
	benchmarkFlowOn(b, newAPIOn(b, rdb, withTracing(tp)), false)
}

func benchmarkFlow(b *testing.B, redeem bool) {
	benchmarkFlowOn(b, newAPI(b), redeem)
}

func benchmarkFlowOn(b *testing.B, a *api, redeem bool) {
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 concurrent clients on 2 cores
	b.ResetTimer()
	cpu := processCPU()
	defer func() { reportCPU(b, processCPU()-cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			customer := fmt.Sprintf("B-%d", n.Add(1))
			chk := a.check(b, cardKey, customer, "credit_card")
			if chk.status != http.StatusCreated {
				b.Fatalf("check: %d %s", chk.status, chk.raw)
			}
			if !redeem {
				continue
			}
			red := a.do(b, "POST", "/v1/redemptions", cardKey, map[string]string{"token": chk.str("token")})
			if red.status != http.StatusCreated {
				b.Fatalf("redeem: %d %s", red.status, red.raw)
			}
		}
	})
}

// reportCPU reports this process's CPU time per operation (the load
// generator's included, redis-server's not): steadier than ns/op on a
// shared machine.
func reportCPU(b *testing.B, cpu time.Duration) {
	if cpu > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkRedeemToken measures token redemptions alone (the checks are
// placed before the timer starts), over HTTP against a real redis-server,
// from parallel clients: "signature" verifies arbiter's Ed25519 signature
// on every redemption, as arbiter did before its tokens carried their
// check's secret; "secret" is arbiter now (Issuer.ParseOwn: every check but
// the signature, and the script compares the secret's digest); "ping" is
// an authenticated GET /v1/ping on the same harness, the floor of a request.
// Compare cpu-ns/op (this process: server and HTTP client). With
// ARBITER_BENCH_CPUPROFILE=<prefix>, each writes a CPU profile of its timed
// part alone to <prefix>-<name>.pprof.
//
//	go test -run '^$' -bench RedeemToken -benchtime 4000x -count 3 ./web/
func BenchmarkRedeemToken(b *testing.B) {
	b.Run("signature", func(b *testing.B) { benchmarkRedeem(b, newAPI(b, withSignatureChecked())) })
	b.Run("secret", func(b *testing.B) { benchmarkRedeem(b, newAPI(b)) })
	b.Run("ping", func(b *testing.B) {
		a := newAPI(b)
		timed(b, "ping", func(int) {
			if r := a.do(b, "GET", "/v1/ping", cardKey, nil); r.status != http.StatusNoContent {
				b.Fatalf("ping: %d %s", r.status, r.raw)
			}
		})
	})
}

// signatureChecked is a Tokens that verifies the signature of every token
// it parses, as redemptions did before ParseOwn.
type signatureChecked struct{ *tokens.Issuer }

func (t signatureChecked) ParseOwn(token, audience string) (tokens.Claims, error) {
	return t.Verify(token, audience)
}

func withSignatureChecked() apiOption {
	return func(cfg *web.Config, _ *string) { cfg.Tokens = signatureChecked{cfg.Tokens.(*tokens.Issuer)} }
}

func benchmarkRedeem(b *testing.B, a *api) {
	toks := make([]string, b.N)
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(n.Add(1)) - 1; i < b.N; i = int(n.Add(1)) - 1 {
				chk := a.check(b, cardKey, fmt.Sprintf("R-%d", i), "credit_card")
				if chk.status != http.StatusCreated {
					b.Errorf("check: %d %s", chk.status, chk.raw)
					return
				}
				toks[i] = chk.str("token")
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	timed(b, strings.TrimPrefix(b.Name(), "BenchmarkRedeemToken/"), func(i int) {
		red := a.do(b, "POST", "/v1/redemptions", cardKey, map[string]string{"token": toks[i]})
		if red.status != http.StatusCreated {
			b.Fatalf("redeem: %d %s", red.status, red.raw)
		}
	})
}

// timed runs op(i) for i in [0, b.N) from 16 parallel clients and reports
// the process's CPU per op, with a CPU profile of that part alone when
// ARBITER_BENCH_CPUPROFILE is set.
func timed(b *testing.B, name string, op func(i int)) {
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 concurrent clients on 2 cores
	if prefix := os.Getenv("ARBITER_BENCH_CPUPROFILE"); prefix != "" {
		f, err := os.Create(prefix + "-" + name + ".pprof")
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	b.ResetTimer()
	cpu := processCPU()
	defer func() { reportCPU(b, processCPU()-cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op(int(n.Add(1)) - 1)
		}
	})
}
