package web

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

// apiMetrics are the metrics the API owns: request durations, refusals
// for a full store by route, and the domain outcomes, counted where the API
// calls the domain (a decorator of Service), so the branch UI's calls
// count too. They are registered on Config.Registry beside the process's
// own (internal/metrics), and /metrics serves that registry whole. Every
// label has a small, fixed set of values: products of the policy
// ("unknown" for anything else), reason codes, route templates. Customer,
// check and client ids never appear.
type apiMetrics struct {
	reg *prometheus.Registry

	checks        *prometheus.CounterVec
	redemptions   *prometheus.CounterVec
	cancellations *prometheus.CounterVec
	releases      *prometheus.CounterVec
	imports       *prometheus.CounterVec
	requests      *prometheus.HistogramVec
	storeFull     *prometheus.CounterVec

	observers observers // of requests
}

// observers keeps the children of a request histogram by their labels, so
// that a request finds its own with one map lookup, no lock and no
// allocation, where WithLabelValues hashes the labels, locks and formats
// the status code on every request. The map is copied on every new child,
// which happens a few dozen times in a process's life: routes times
// methods times status codes.
type observers struct {
	vec *prometheus.HistogramVec
	mu  sync.Mutex // held to add a child
	m   atomic.Pointer[map[observerKey]prometheus.Observer]
}

type observerKey struct {
	method, route string
	code          int
}

// maxObservers bounds the map: odd methods, which any client can send,
// go to the histogram directly beyond it.
const maxObservers = 512

func (o *observers) get(method, route string, code int) prometheus.Observer {
	k := observerKey{method, route, code}
	if m := o.m.Load(); m != nil {
		if obs, ok := (*m)[k]; ok {
			return obs
		}
	}
	obs := o.vec.WithLabelValues(method, route, strconv.Itoa(code))
	o.mu.Lock()
	defer o.mu.Unlock()
	old := o.m.Load()
	if old != nil && len(*old) >= maxObservers {
		return obs
	}
	m := make(map[observerKey]prometheus.Observer, 1+len(deref(old)))
	for key, v := range deref(old) {
		m[key] = v
	}
	m[k] = obs
	o.m.Store(&m)
	return obs
}

func deref[M any](p *M) (m M) {
	if p != nil {
		m = *p
	}
	return m
}

func newAPIMetrics(reg *prometheus.Registry) *apiMetrics {
	m := &apiMetrics{
		reg: reg,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_checks_total",
			Help: "Checks by product and outcome: held, replayed (idempotent retry) or the refusal reason.",
		}, []string{"product", "outcome"}),
		redemptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_redemptions_total",
			Help: "Redemptions by channel (token, otp), product and outcome: granted, replayed or the reason.",
		}, []string{"channel", "product", "outcome"}),
		cancellations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_cancellations_total",
			Help: "Cancellations of checks by outcome: cancelled or the reason.",
		}, []string{"outcome"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_releases_total",
			Help: "Releases of grants by product and outcome: released or the reason.",
		}, []string{"product", "outcome"}),
		imports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_imports_total",
			Help: "Imports of grants by product and outcome: imported or the reason.",
		}, []string{"product", "outcome"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "arbiter_http_request_duration_seconds",
			Help:    "HTTP request duration by method, route template and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route", "code"}),
		storeFull: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_store_full_total",
			Help: "Requests refused with 503 store_full because Redis reached its maxmemory, by route template.",
		}, []string{"route"}),
	}
	reg.MustRegister(m.checks, m.redemptions, m.cancellations, m.releases, m.imports, m.requests, m.storeFull)
	m.observers.vec = m.requests
	return m
}

// storeFullRefused counts one request refused with store_full.
func (m *apiMetrics) storeFullRefused(route string) { m.storeFull.WithLabelValues(route).Inc() }

// handler serves the registry in the Prometheus text format.
func (m *apiMetrics) handler() echo.HandlerFunc {
	return echo.WrapHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
}

// observeRequests times every request. It runs outside accessLog, which
// writes a handler's error, so the status it sees is the one sent.
func (m *apiMetrics) observeRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		route := c.Path()
		if route == "" || c.Response().Status == 404 && validation.ReasonOf(err) == validation.ReasonNotFound {
			route = "unmatched" // arbitrary paths must not become label values
		}
		m.observers.get(c.Request().Method, route, c.Response().Status).Observe(time.Since(startOf(c)).Seconds())
		return err
	}
}

// outcome is the label of a domain call's result.
func outcome(ok string, replayed bool, err error) string {
	switch {
	case err != nil:
		return string(validation.ReasonOf(err))
	case replayed:
		return "replayed"
	}
	return ok
}

// countingService counts the domain outcomes of the calls it passes on.
type countingService struct {
	Service
	m      *apiMetrics
	policy *validation.Policy
}

// product is the label of a product name a client sent: only the policy's
// names, so no client can create label values.
func (s countingService) product(name string) string {
	if s.policy.Knows(name) {
		return name
	}
	return "unknown"
}

func (s countingService) Check(ctx context.Context, a validation.Actor, in validation.CheckInput) (validation.Check, bool, error) {
	ch, replayed, err := s.Service.Check(ctx, a, in)
	s.m.checks.WithLabelValues(s.product(in.Product), outcome("held", replayed, err)).Inc()
	return ch, replayed, err
}

func (s countingService) RedeemToken(ctx context.Context, a validation.Actor, customerID, product, checkID string, proof validation.TokenProof) (validation.Grant, bool, error) {
	g, replayed, err := s.Service.RedeemToken(ctx, a, customerID, product, checkID, proof)
	s.m.redemptions.WithLabelValues("token", s.product(product), outcome("granted", replayed, err)).Inc()
	return g, replayed, err
}

func (s countingService) RedeemOTP(ctx context.Context, a validation.Actor, customerID, product, code string) (validation.Grant, bool, error) {
	g, replayed, err := s.Service.RedeemOTP(ctx, a, customerID, product, code)
	s.m.redemptions.WithLabelValues("otp", s.product(product), outcome("granted", replayed, err)).Inc()
	return g, replayed, err
}

func (s countingService) Cancel(ctx context.Context, a validation.Actor, checkID string) (validation.Check, error) {
	ch, err := s.Service.Cancel(ctx, a, checkID)
	s.m.cancellations.WithLabelValues(outcome("cancelled", false, err)).Inc()
	return ch, err
}

func (s countingService) Release(ctx context.Context, a validation.Actor, customerID, product, checkID string) (validation.Grant, error) {
	g, err := s.Service.Release(ctx, a, customerID, product, checkID)
	s.m.releases.WithLabelValues(s.product(product), outcome("released", false, err)).Inc()
	return g, err
}

func (s countingService) Import(ctx context.Context, a validation.Actor, customerID, product string, at time.Time) (validation.Grant, error) {
	g, err := s.Service.Import(ctx, a, customerID, product, at)
	s.m.imports.WithLabelValues(s.product(product), outcome("imported", false, err)).Inc()
	return g, err
}

// countingTokens counts token redemptions refused before they reach the
// domain: the API verifies approval tokens only to redeem them.
type countingTokens struct {
	Tokens
	m *apiMetrics
}

func (t countingTokens) ParseOwn(token, audience string) (tokens.Claims, error) {
	c, err := t.Tokens.ParseOwn(token, audience)
	if err != nil {
		t.m.redemptions.WithLabelValues("token", "unknown", string(validation.ReasonTokenInvalid)).Inc()
	}
	return c, err
}

// instrument wraps the configuration's Service and Tokens so that their
// outcomes are counted.
func (m *apiMetrics) instrument(cfg *Config) {
	cfg.Service = countingService{Service: cfg.Service, m: m, policy: cfg.Policy}
	cfg.Tokens = countingTokens{Tokens: cfg.Tokens, m: m}
}
