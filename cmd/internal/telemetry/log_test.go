package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/arbiter-bank/arbiter/cmd/internal/telemetry"
)

func TestLogHandler(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	tests := []struct {
		name string
		ctx  context.Context
		want string // "" for no trace_id
	}{
		{"a traced context", traced, `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"`},
		{"no span", context.Background(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "x")
			log.ErrorContext(tt.ctx, "request failed")
			got := buf.String()
			if tt.want == "" && strings.Contains(got, "trace_id") || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("log line %s, want trace ids %q", got, tt.want)
			}
			if !strings.Contains(got, `"service":"x"`) {
				t.Errorf("log line %s lost its attributes", got)
			}
		})
	}
}
