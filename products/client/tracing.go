package client

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// routes are the URL templates of the calls, by op: what client spans are
// named after and what their url.full says, since the real paths hold
// customer ids.
var routes = map[string]string{
	"check":      "/v1/checks",
	"get check":  "/v1/checks/{check_id}",
	"cancel":     "/v1/checks/{check_id}",
	"redeem":     "/v1/redemptions",
	"customer":   "/v1/customers/{customer_id}",
	"release":    "/v1/customers/{customer_id}/products/{product}",
	"audit":      "/v1/customers/{customer_id}/audit",
	"ready":      "/readyz",
	"fetch jwks": "/.well-known/jwks.json",
}

type routeKey struct{}

// withRoute marks ctx with the template of the call op makes, for the
// span; a no-op when the client is not traced.
func (c *Client) withRoute(ctx context.Context, op string) context.Context {
	if c.cfg.TracerProvider == nil {
		return ctx
	}
	return context.WithValue(ctx, routeKey{}, routes[op])
}

func routeOf(ctx context.Context) string {
	r, _ := ctx.Value(routeKey{}).(string)
	return r
}

// traced returns hc with a transport that makes a client span per HTTP
// request (every try of a call) and sends the span's context to arbiter
// as a W3C traceparent, so arbiter's server span is its child.
func traced(hc *http.Client, tp trace.TracerProvider, prop propagation.TextMapPropagator) *http.Client {
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out := *hc
	out.Transport = otelhttp.NewTransport(templateURL{base},
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if route := routeOf(r.Context()); route != "" {
				return r.Method + " " + route
			}
			return r.Method
		}))
	return &out
}

// templateURL runs inside otelhttp's transport, after it recorded the
// request's attributes: it overwrites url.full, which holds the real path
// and query (customer ids, check ids), with the call's template.
type templateURL struct{ next http.RoundTripper }

func (t templateURL) RoundTrip(r *http.Request) (*http.Response, error) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		route := routeOf(r.Context())
		span.SetAttributes(attribute.String("url.full", r.URL.Scheme+"://"+r.URL.Host+route),
			attribute.String("url.template", route))
	}
	return t.next.RoundTrip(r)
}
