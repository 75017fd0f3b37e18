package telemetry_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/cmd/internal/telemetry"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		// want: endpoint, protocol, service, sampler description; or an
		// error naming wantErr.
		endpoint, protocol, service, sampler string
		wantErr                              string
	}{
		{name: "off without an endpoint", env: nil},
		{name: "off with exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "off when the SDK is disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "http adds the traces path", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
			endpoint: "http://c:4318/v1/traces", protocol: "http/protobuf", service: "svc", sampler: "ParentBased{root:AlwaysOnSampler"},
		{name: "the traces endpoint is used as given", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t:443/x"},
			endpoint: "https://t:443/x", protocol: "http/protobuf", service: "svc", sampler: "ParentBased"},
		{name: "grpc keeps the endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			endpoint: "http://c:4317", protocol: "grpc", service: "svc", sampler: "ParentBased"},
		{name: "service name from OTEL_SERVICE_NAME", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SERVICE_NAME": "arb-eu", "OTEL_RESOURCE_ATTRIBUTES": "service.name=other"},
			endpoint: "http://c/v1/traces", protocol: "http/protobuf", service: "arb-eu", sampler: "ParentBased"},
		{name: "service name from the resource attributes", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_RESOURCE_ATTRIBUTES": "service.name=arb%20eu,deployment.environment=prod"},
			endpoint: "http://c/v1/traces", protocol: "http/protobuf", service: "arb eu", sampler: "ParentBased"},
		{name: "ratio sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			endpoint: "http://c/v1/traces", protocol: "http/protobuf", service: "svc", sampler: "ParentBased{root:TraceIDRatioBased{0.25}"},
		{name: "always off", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_SAMPLER": "always_off"},
			endpoint: "http://c/v1/traces", protocol: "http/protobuf", service: "svc", sampler: "AlwaysOffSampler"},
		{name: "unknown sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_SAMPLER": "jaeger_remote"}, wantErr: "OTEL_TRACES_SAMPLER"},
		{name: "bad ratio", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "http/json is not served", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "endpoint not a URL", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "unknown exporter", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "bad headers", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, wantErr: "OTEL_EXPORTER_OTLP_HEADERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := telemetry.ParseConfig(func(k string) string { return tt.env[k] }, "svc")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Endpoint, tt.endpoint; got != want {
				t.Fatalf("endpoint = %q, want %q", got, want)
			}
			if tt.endpoint == "" {
				return
			}
			if got, want := c.Protocol, tt.protocol; got != want {
				t.Errorf("protocol = %q, want %q", got, want)
			}
			if got, want := c.ServiceName, tt.service; got != want {
				t.Errorf("service = %q, want %q", got, want)
			}
			if got := c.Sampler.Description(); !strings.HasPrefix(got, tt.sampler) {
				t.Errorf("sampler = %q, want %q…", got, tt.sampler)
			}
		})
	}
}

func TestHeadersAreDecoded(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc, x-tenant=t1"}
	c, err := telemetry.ParseConfig(func(k string) string { return env[k] }, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Headers["authorization"], "Bearer abc"; got != want {
		t.Errorf("authorization = %q, want %q", got, want)
	}
	if got, want := c.Headers["x-tenant"], "t1"; got != want {
		t.Errorf("x-tenant = %q, want %q", got, want)
	}
}

func TestSetupOffIsNoProvider(t *testing.T) {
	tr, _, err := telemetry.Setup(context.Background(), func(string) string { return "" }, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.Provider != nil {
		t.Fatal("tracing on without an endpoint")
	}
	if tr.Propagator == nil {
		t.Error("no propagator")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func TestRedactedEndpoint(t *testing.T) {
	c, err := telemetry.ParseConfig(func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:s3cr3t@collector:4318"}[k]
	}, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.RedactedEndpoint(), "https://user:xxxxx@collector:4318/v1/traces"; got != want {
		t.Fatalf("RedactedEndpoint() = %q, want %q", got, want)
	}
	_, err = telemetry.ParseConfig(func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://user:s3cr3t@collector"}[k]
	}, "svc")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("invalid endpoint error = %v; want one without the password", err)
	}
}

// TestPropagatorsFromTheEnvironment: OTEL_PROPAGATORS picks what is read
// and written, with tracing on or off; what arbiter cannot propagate is
// refused by name, never dropped.
func TestPropagatorsFromTheEnvironment(t *testing.T) {
	for _, tt := range []struct {
		value, endpoint string
		fields          string // the propagator's Fields, sorted
		wantErr         string
	}{
		{value: "", fields: "baggage traceparent tracestate"},
		{value: "", endpoint: "http://c", fields: "baggage traceparent tracestate"},
		{value: "tracecontext", fields: "traceparent tracestate"},
		{value: " baggage ", endpoint: "http://c", fields: "baggage"},
		{value: "tracecontext,baggage", fields: "baggage traceparent tracestate"},
		{value: "none", fields: ""},
		{value: "b3", wantErr: `"b3" is not supported`},
		{value: "tracecontext,jaeger", wantErr: `"jaeger" is not supported`},
		{value: "none,baggage", wantErr: "none cannot be combined"},
	} {
		env := map[string]string{"OTEL_PROPAGATORS": tt.value, "OTEL_EXPORTER_OTLP_ENDPOINT": tt.endpoint}
		tr, _, err := telemetry.Setup(context.Background(), func(k string) string { return env[k] }, "svc")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "OTEL_PROPAGATORS") {
				t.Errorf("OTEL_PROPAGATORS=%q: err = %v, want one saying %s", tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("OTEL_PROPAGATORS=%q: %v", tt.value, err)
		}
		fields := tr.Propagator.Fields()
		slices.Sort(fields)
		if got := strings.Join(fields, " "); got != tt.fields {
			t.Errorf("OTEL_PROPAGATORS=%q (endpoint %q): fields %q, want %q", tt.value, tt.endpoint, got, tt.fields)
		}
		_ = tr.Shutdown(context.Background())
	}
}
