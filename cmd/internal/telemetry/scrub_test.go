package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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

// TestScrubEventsAndStatus: an error's text (a domain error's detail may
// name a customer) reaches neither the exception event nor the status;
// the event, its type and the status code stay.
func TestScrubEventsAndStatus(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(telemetry.Scrub(mem)))
	_, span := tp.Tracer("t").Start(context.Background(), "POST /v1/checks")
	err := errors.New("customer C-4711 already holds credit_card")
	span.RecordError(err, trace.WithAttributes(attribute.String("url.path", "/v1/customers/C-4711")))
	span.AddEvent("lookup", trace.WithAttributes(attribute.String("db.statement", "get arb:{C-4711}"), attribute.String("arbiter.product", "credit_card")))
	span.SetStatus(codes.Error, err.Error())
	span.End()
	spans := mem.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1", len(spans))
	}
	sp := spans[0]
	if dump := fmt.Sprintf("%+v", sp); strings.Contains(dump, "C-4711") {
		t.Errorf("exported span names the customer: %s", dump)
	}
	if sp.Status.Code != codes.Error || sp.Status.Description == "" {
		t.Errorf("status = %+v, want Error with a generic description", sp.Status)
	}
	if len(sp.Events) != 2 || sp.Events[0].Name != "exception" {
		t.Fatalf("events = %+v, want the exception and lookup", sp.Events)
	}
	var exceptionType, product bool
	for _, a := range sp.Events[0].Attributes {
		exceptionType = exceptionType || a.Key == "exception.type"
	}
	for _, a := range sp.Events[1].Attributes {
		product = product || a.Key == "arbiter.product"
	}
	if !exceptionType || !product {
		t.Errorf("events lost their harmless attributes: %+v", sp.Events)
	}
}
