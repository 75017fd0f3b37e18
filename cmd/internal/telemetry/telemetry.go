// Package telemetry sets up OpenTelemetry tracing for the binaries, from the
// standard OTEL_* environment variables read through the injected getenv.
//
// Tracing is off unless an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and
// OTEL_TRACES_EXPORTER is not "none", OTEL_SDK_DISABLED not "true"). Off,
// Setup returns a Tracing whose Provider is nil: callers then install no
// instrumentation at all, so tracing costs nothing on the hot path.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is what the binaries wire into their servers and clients.
type Tracing struct {
	// Provider makes the tracers; nil when tracing is off.
	Provider trace.TracerProvider
	// Propagator reads and writes the trace context OTEL_PROPAGATORS
	// names: W3C traceparent/tracestate and baggage unless it says otherwise.
	Propagator propagation.TextMapPropagator
	// Shutdown flushes the spans still buffered and stops the exporter;
	// a no-op when tracing is off.
	Shutdown func(context.Context) error
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.Provider != nil }

// Propagator is every binary's propagator when OTEL_PROPAGATORS is unset:
// W3C trace context and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// propagators builds the propagator OTEL_PROPAGATORS names: a comma list of
// tracecontext and baggage, or none (nothing read or written). B3, Jaeger
// and the others of the specification are refused by name rather than
// ignored, so a caller's trace is never silently cut.
func propagators(v string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(v) == "" {
		return Propagator(), nil
	}
	var ps []propagation.TextMapPropagator
	names := strings.Split(v, ",")
	for _, name := range names {
		switch name = strings.TrimSpace(name); name {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		case "none":
			if len(names) > 1 {
				return nil, fmt.Errorf("OTEL_PROPAGATORS=%q: none cannot be combined with other propagators", v)
			}
		default:
			return nil, fmt.Errorf("OTEL_PROPAGATORS=%q: %q is not supported; use tracecontext, baggage or none", v, name)
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}

// Config is tracing's configuration, as read from the environment.
type Config struct {
	Endpoint    string // full URL spans are sent to; empty: tracing off
	Protocol    string // "http/protobuf" or "grpc"
	Headers     map[string]string
	ServiceName string
	Resource    []attribute.KeyValue // OTEL_RESOURCE_ATTRIBUTES, service.name excluded
	Sampler     sdktrace.Sampler
	SamplerName string // for the logs
	// Propagator is OTEL_PROPAGATORS's (Propagator() when unset); it is
	// used with tracing off too, so a product service's trace context is
	// passed on, or not, the same way.
	Propagator propagation.TextMapPropagator
}

// RedactedEndpoint is Endpoint for the logs: a password in its userinfo
// (https://user:secret@collector) is replaced by "xxxxx".
func (c Config) RedactedEndpoint() string {
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// ParseConfig reads the OTEL_* variables through getenv. defaultService is
// the service.name when neither OTEL_SERVICE_NAME nor
// OTEL_RESOURCE_ATTRIBUTES names one. An invalid value is an error naming
// the variable, so a typo does not silently turn tracing off.
func ParseConfig(getenv func(string) string, defaultService string) (Config, error) {
	var c Config
	var err error
	if c.Propagator, err = propagators(getenv("OTEL_PROPAGATORS")); err != nil {
		return Config{}, err
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return c, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "", "otlp":
	case "none":
		return c, nil
	default:
		return c, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", exp)
	}
	c.Protocol = first(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf")
	if c.Protocol != "http/protobuf" && c.Protocol != "grpc" {
		return c, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: use http/protobuf or grpc", c.Protocol)
	}
	if c.Endpoint, err = endpoint(getenv, c.Protocol); err != nil {
		return Config{}, err
	}
	if c.Endpoint == "" {
		return Config{Propagator: c.Propagator}, nil
	}
	if c.Headers, err = keyValues(first(getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS"), getenv("OTEL_EXPORTER_OTLP_HEADERS"))); err != nil {
		return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err)
	}
	res, err := keyValues(getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return Config{}, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	c.ServiceName = first(getenv("OTEL_SERVICE_NAME"), res["service.name"], defaultService)
	delete(res, "service.name")
	for k, v := range res {
		c.Resource = append(c.Resource, attribute.String(k, v))
	}
	c.SamplerName = first(getenv("OTEL_TRACES_SAMPLER"), "parentbased_always_on")
	if c.Sampler, err = sampler(c.SamplerName, getenv("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		return Config{}, err
	}
	return c, nil
}

// endpoint is the URL spans go to: the traces endpoint as given, or the
// general endpoint plus /v1/traces for OTLP/HTTP (as the specification says).
func endpoint(getenv func(string) string, protocol string) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	signal := raw != ""
	if !signal {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	}
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if err == nil {
			raw = u.Redacted() // the error is logged: not the password
		}
		return "", fmt.Errorf("%s=%q: want an http:// or https:// URL", name, raw)
	}
	if !signal && protocol == "http/protobuf" {
		u.Path = strings.TrimRight(u.Path, "/") + "/v1/traces"
	}
	return u.String(), nil
}

// sampler builds the sampler OTEL_TRACES_SAMPLER names.
func sampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg = strings.TrimSpace(arg); arg != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		ratio = r
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: use always_on, always_off, traceidratio or their parentbased_ forms", name)
}

// keyValues parses the W3C-baggage-like k=v,k2=v2 lists of the OTEL_*
// variables; values are percent-decoded.
func keyValues(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		m[k] = dv
	}
	return m, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// Setup reads the configuration and, when an endpoint is set, starts an
// OTLP exporter behind a batching TracerProvider. Spans pass through
// Scrub on their way out.
//
// The OTLP exporter itself also reads the process environment
// (os.Getenv) for the settings given here no option for: certificates,
// compression, timeout; the endpoint, protocol and headers always come
// from getenv.
func Setup(ctx context.Context, getenv func(string) string, defaultService string) (*Tracing, Config, error) {
	off := &Tracing{Propagator: Propagator(), Shutdown: func(context.Context) error { return nil }}
	cfg, err := ParseConfig(getenv, defaultService)
	if err != nil {
		return off, cfg, err
	}
	off.Propagator = cfg.Propagator
	if cfg.Endpoint == "" {
		return off, cfg, nil
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return off, cfg, fmt.Errorf("tracing exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(append([]attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}, cfg.Resource...)...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return off, cfg, fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(Scrub(exp)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(cfg.Sampler),
	)
	return &Tracing{Provider: tp, Propagator: cfg.Propagator, Shutdown: tp.Shutdown}, cfg, nil
}

func newExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	if cfg.Protocol == "grpc" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.Endpoint)}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	return otlptracehttp.New(ctx, opts...)
}
