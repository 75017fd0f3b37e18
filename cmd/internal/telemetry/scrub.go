package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// scrubbed are the attribute keys that never leave the process: the paths,
// queries and full URLs of requests (arbiter's carry customer ids, as in
// /v1/customers/{id}) and Redis statements (their KEYS name customers,
// their ARGV carry check ids). The instrumentation sites already replace
// the URL attributes with route templates and turn statements off; this is
// the second lock, should an instrumentation upgrade start recording more.
var scrubbed = map[attribute.Key]bool{
	"url.full": true, "url.path": true, "url.query": true,
	"http.url": true, "http.target": true,
	"db.statement": true, "db.query.text": true,
	"echo.error": true, // otelecho's err.Error(): a domain error's detail may name a customer
}

// Scrub returns an exporter that drops the scrubbed attributes from every
// span before exp sees it.
func Scrub(exp sdktrace.SpanExporter) sdktrace.SpanExporter { return scrubber{exp} }

type scrubber struct{ sdktrace.SpanExporter }

func (s scrubber) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, sp := range spans {
		out[i] = scrubbedSpan{sp}
	}
	return s.SpanExporter.ExportSpans(ctx, out)
}

// scrubbedSpan is a span whose Attributes lack the scrubbed keys; embedding
// the interface keeps every other method, the unexported one included.
type scrubbedSpan struct{ sdktrace.ReadOnlySpan }

func (s scrubbedSpan) Attributes() []attribute.KeyValue {
	attrs := s.ReadOnlySpan.Attributes()
	kept := make([]attribute.KeyValue, 0, len(attrs))
	for _, a := range attrs {
		if !scrubbed[a.Key] {
			kept = append(kept, a)
		}
	}
	return kept
}
