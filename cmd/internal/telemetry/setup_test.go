package telemetry_test

import (
	"context"
	"net"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/arbiter-bank/arbiter/cmd/internal/telemetry"
	"github.com/arbiter-bank/arbiter/internal/otlptest"
)

// grpcReceiver is an OTLP/gRPC trace collector on loopback that keeps the
// names of the spans it is sent.
type grpcReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
}

func (g *grpcReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				g.names = append(g.names, sp.Name)
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func startGRPC(tb testing.TB) (*grpcReceiver, string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	g := &grpcReceiver{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, g)
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	return g, "http://" + ln.Addr().String()
}

// TestSetupExports sends one span through Setup's provider over each
// protocol and finds it at the collector once Shutdown has flushed.
func TestSetupExports(t *testing.T) {
	tests := []struct {
		name  string
		start func(testing.TB) (env map[string]string, received func() []string)
	}{
		{"http/protobuf", func(tb testing.TB) (map[string]string, func() []string) {
			r := otlptest.Start(tb)
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.Endpoint()}, func() []string {
				var names []string
				for _, s := range r.Spans() {
					names = append(names, s.Name)
				}
				return names
			}
		}},
		{"grpc", func(tb testing.TB) (map[string]string, func() []string) {
			g, url := startGRPC(tb)
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, func() []string {
				g.mu.Lock()
				defer g.mu.Unlock()
				return append([]string(nil), g.names...)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, received := tt.start(t)
			tr, _, err := telemetry.Setup(context.Background(), func(k string) string { return env[k] }, "svc")
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Enabled() {
				t.Fatal("tracing off with an endpoint")
			}
			_, span := tr.Provider.Tracer("test").Start(context.Background(), "one span")
			span.End()
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := received(); len(got) != 1 || got[0] != "one span" {
				t.Errorf("received %q, want [one span]", got)
			}
		})
	}
}
