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
	// RecordError's text and stack, on the "exception" event, for the
	// same reason; exception.type stays.
	"exception.message": true, "exception.stacktrace": true,
}

// scrubbedStatus replaces an error status's description (SetStatus(Error,
// err.Error()) carries the same text); the code stays.
const scrubbedStatus = "error (description scrubbed)"

// Scrub returns an exporter that drops the scrubbed attributes from every
// span and its events, and replaces its status description, before exp
// sees it.
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

func (s scrubbedSpan) Attributes() []attribute.KeyValue { return scrub(s.ReadOnlySpan.Attributes()) }

func (s scrubbedSpan) Events() []sdktrace.Event {
	events := s.ReadOnlySpan.Events()
	out := make([]sdktrace.Event, len(events))
	for i, e := range events {
		e.Attributes = scrub(e.Attributes)
		out[i] = e
	}
	return out
}

func (s scrubbedSpan) Status() sdktrace.Status {
	st := s.ReadOnlySpan.Status()
	if st.Description != "" {
		st.Description = scrubbedStatus
	}
	return st
}

func scrub(attrs []attribute.KeyValue) []attribute.KeyValue {
	kept := make([]attribute.KeyValue, 0, len(attrs))
	for _, a := range attrs {
		if !scrubbed[a.Key] {
			kept = append(kept, a)
		}
	}
	return kept
}
