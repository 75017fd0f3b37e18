package web_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
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
