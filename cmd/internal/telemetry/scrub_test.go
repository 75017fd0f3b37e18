package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/arbiter-bank/arbiter/cmd/internal/telemetry"
)

func TestScrubDropsPathsAndStatements(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(telemetry.Scrub(mem)))
	_, span := tp.Tracer("t").Start(context.Background(), "GET /v1/customers/:customer_id")
	span.SetAttributes(
		attribute.String("url.path", "/v1/customers/C-1"), attribute.String("url.full", "http://a/v1/customers/C-1?x=1"),
		attribute.String("url.query", "x=1"), attribute.String("http.target", "/v1/customers/C-1"),
		attribute.String("db.statement", "evalsha abc 1 arb:{C-1}:hold"), attribute.String("db.query.text", "get arb:{C-1}"),
		attribute.String("echo.error", "C-1 is blocked"),
		attribute.String("http.route", "/v1/customers/:customer_id"), attribute.String("arbiter.product", "credit_card"))
	span.End() // exported at once: a syncer
	spans := mem.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1", len(spans))
	}
	got := map[attribute.Key]string{}
	for _, a := range spans[0].Attributes {
		got[a.Key] = a.Value.Emit()
	}
	for _, k := range []attribute.Key{"url.path", "url.full", "url.query", "http.target", "db.statement", "db.query.text", "echo.error"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %q exported", k, v)
		}
	}
	for k, want := range map[attribute.Key]string{"http.route": "/v1/customers/:customer_id", "arbiter.product": "credit_card"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}
