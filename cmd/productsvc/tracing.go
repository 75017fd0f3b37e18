package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbiter-bank/arbiter/cmd/internal/telemetry"
)

// traceRequests wraps h with otelhttp when tracing is on: a server span
// per request that continues the caller's traceparent; the service's
// calls to arbiter become its children (products/client traces them) and
// carry the trace on to arbiter. Health probes are not traced.
func traceRequests(h http.Handler, tr *telemetry.Tracing) http.Handler {
	if !tr.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "productsvc",
		otelhttp.WithTracerProvider(tr.Provider), otelhttp.WithPropagators(tr.Propagator),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" }))
}

// routeOnly names the server span after the route once the mux has
// matched the request, sets http.route and overwrites url.path with it:
// DELETE /v1/products/{customer_id} carries a customer id in its path. It
// must wrap the mux directly (inside http.TimeoutHandler, which passes on
// a copy of the request): the mux sets the pattern on the request it gets.
func routeOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		span := trace.SpanFromContext(r.Context())
		if !span.IsRecording() {
			return
		}
		route := r.Pattern // "DELETE /v1/products/{customer_id}", set by the mux on r
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		if route == "" {
			route = "unmatched"
		}
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.String("url.path", route))
	})
}

// flushTracing sends the spans still buffered, within a bound.
func flushTracing(tr *telemetry.Tracing, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans not flushed at exit", "err", err)
	}
}
