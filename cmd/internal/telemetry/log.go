package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogHandler adds trace_id and span_id to every record logged with a
// context that carries a span (log.InfoContext and the like), so a log
// line leads to its trace.
func LogHandler(h slog.Handler) slog.Handler { return traceLog{h} }

type traceLog struct{ slog.Handler }

func (t traceLog) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return t.Handler.Handle(ctx, r)
}

func (t traceLog) WithAttrs(as []slog.Attr) slog.Handler { return traceLog{t.Handler.WithAttrs(as)} }
func (t traceLog) WithGroup(name string) slog.Handler    { return traceLog{t.Handler.WithGroup(name)} }
