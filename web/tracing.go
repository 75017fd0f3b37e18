package web

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbiter-bank/arbiter/validation"
)

// Span attributes arbiter adds to the server span. Customer ids, check ids,
// codes, tokens and keys are never span attributes.
const (
	attrReason  = attribute.Key("arbiter.reason")  // the problem's reason code of a failed request
	attrProduct = attribute.Key("arbiter.product") // a product of the policy, or "unknown"
)

// tracing returns the middleware that traces requests, or nothing when no
// TracerProvider is configured: then no span, attribute or context is made
// per request.
//
// otelecho starts the server span, continuing the caller's traceparent, and
// names it after the route template ("GET /v1/customers/:customer_id").
// It records the request's path as url.path, which would put customer ids
// in traces; routeOnly overwrites it with the template. The health probes
// and /metrics are not traced.
func (s *Server) tracing() []echo.MiddlewareFunc {
	if s.cfg.TracerProvider == nil {
		return nil
	}
	prop := s.cfg.Propagator
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return []echo.MiddlewareFunc{
		otelecho.Middleware("arbiter",
			otelecho.WithTracerProvider(s.cfg.TracerProvider),
			otelecho.WithPropagators(prop),
			otelecho.WithSkipper(func(c echo.Context) bool {
				switch c.Path() {
				case "/healthz", "/readyz", "/metrics":
					return true
				}
				return false
			})),
		routeOnly,
	}
}

// routeOnly replaces the server span's url.path with the route template.
func routeOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if span := trace.SpanFromContext(c.Request().Context()); span.IsRecording() {
			span.SetAttributes(attribute.String("url.path", c.Path()))
		}
		return next(c)
	}
}

// traceID is the request's trace id for the logs, or "" when the request
// is not traced.
func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// spanReason records a failed request's reason code on its span.
func spanReason(ctx context.Context, r validation.Reason) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attrReason.String(string(r)))
	}
}

// tracedService records on the server span the product each domain call
// is about: only the policy's names, so a client cannot fill traces with
// arbitrary strings. It is installed only when tracing is on.
type tracedService struct {
	Service
	policy *validation.Policy
}

func (s tracedService) product(ctx context.Context, name string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if !s.policy.Knows(name) {
		name = "unknown"
	}
	span.SetAttributes(attrProduct.String(name))
}

func (s tracedService) Check(ctx context.Context, a validation.Actor, in validation.CheckInput) (validation.Check, bool, error) {
	s.product(ctx, in.Product)
	return s.Service.Check(ctx, a, in)
}

func (s tracedService) RedeemToken(ctx context.Context, a validation.Actor, customerID, product, checkID string, proof validation.TokenProof) (validation.Grant, bool, error) {
	s.product(ctx, product)
	return s.Service.RedeemToken(ctx, a, customerID, product, checkID, proof)
}

func (s tracedService) RedeemOTP(ctx context.Context, a validation.Actor, customerID, product, code string) (validation.Grant, bool, error) {
	s.product(ctx, product)
	return s.Service.RedeemOTP(ctx, a, customerID, product, code)
}

func (s tracedService) Cancel(ctx context.Context, a validation.Actor, checkID string) (validation.Check, error) {
	ch, err := s.Service.Cancel(ctx, a, checkID)
	if ch.Product != "" {
		s.product(ctx, ch.Product)
	}
	return ch, err
}

func (s tracedService) Release(ctx context.Context, a validation.Actor, customerID, product, checkID string) (validation.Grant, error) {
	s.product(ctx, product)
	return s.Service.Release(ctx, a, customerID, product, checkID)
}

func (s tracedService) Import(ctx context.Context, a validation.Actor, customerID, product string, at time.Time) (validation.Grant, error) {
	s.product(ctx, product)
	return s.Service.Import(ctx, a, customerID, product, at)
}

func (s tracedService) Eligibility(ctx context.Context, customerID, product string) (validation.Eligibility, error) {
	s.product(ctx, product)
	return s.Service.Eligibility(ctx, customerID, product)
}
