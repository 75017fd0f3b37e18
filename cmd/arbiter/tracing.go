package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/cmd/internal/telemetry"
)

// startTracing sets up OpenTelemetry tracing from the OTEL_* variables
// (see cmd/internal/telemetry); without an OTLP endpoint it is off.
func startTracing(ctx context.Context, getenv func(string) string, log *slog.Logger) (*telemetry.Tracing, error) {
	tr, cfg, err := telemetry.Setup(ctx, getenv, "arbiter")
	if err != nil {
		return nil, err
	}
	if tr.Enabled() {
		// Not the headers: they may carry the collector's credentials.
		log.Info("tracing on", "endpoint", cfg.RedactedEndpoint(), "protocol", cfg.Protocol,
			"service", cfg.ServiceName, "sampler", cfg.SamplerName)
	}
	return tr, nil
}

// stopTracing flushes the spans still buffered, within a bound: a
// collector that is down must not hold up the exit.
func stopTracing(tr *telemetry.Tracing, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans not flushed at exit", "err", err)
	}
}

// traceRedis adds a span per Redis command (the FCALL or EVALSHA, a
// pipeline's WAIT) under the request's span, when tracing is on. Without
// statements: a command's KEYS name the customer, its ARGV carry check
// ids, and neither may leave the process. Without callers either: walking
// the stack per command costs more than the span. Nor PING: /readyz pings
// Redis for every probe, untraced, and each would be a trace of its own.
func traceRedis(rdb redis.UniversalClient, tr *telemetry.Tracing) error {
	if !tr.Enabled() {
		return nil
	}
	if err := redisotel.InstrumentTracing(rdb,
		redisotel.WithTracerProvider(tr.Provider),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
		redisotel.WithCommandFilter(func(cmd redis.Cmder) bool {
			return cmd.Name() == "ping" || redisotel.DefaultCommandFilter(cmd) // the default drops AUTH
		}),
	); err != nil {
		return fmt.Errorf("redis tracing: %w", err)
	}
	return nil
}
