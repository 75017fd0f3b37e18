package web

import (
	"context"
	"crypto/x509"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
)

// Metrics are arbiter's Prometheus metrics, served at /metrics. Every label
// has a small, fixed set of values: products of the policy ("unknown" for
// anything else), reason codes, route templates, script names. Customer,
// check and client ids never appear.
//
// Domain outcomes are counted where the API calls the domain (a decorator
// of Service), so the branch UI's calls count too. Hold expiries are
// counted through the store's OnExpiry hook (HoldExpired): Redis drops an
// expired hold on its own, and the scripts settle it, and report it, on the
// customer's next operation; so the counter lags the expiry itself.
type Metrics struct {
	reg *prometheus.Registry

	checks        *prometheus.CounterVec
	redemptions   *prometheus.CounterVec
	cancellations *prometheus.CounterVec
	releases      *prometheus.CounterVec
	imports       *prometheus.CounterVec
	requests      *prometheus.HistogramVec
	scripts       *prometheus.HistogramVec
	expiries      prometheus.Counter
	storeFull     *prometheus.CounterVec
	findings      *prometheus.CounterVec
	lastSuccess   *prometheus.GaugeVec
	clockOffset   prometheus.Gauge
	connsClosed   *prometheus.CounterVec
}

// NewMetrics registers arbiter's metrics, the Go runtime's and the
// process's, and arbiter_build_info, on reg; a nil reg means a new registry
// (never the global default, so tests and servers stay apart).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
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
		scripts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "arbiter_redis_script_duration_seconds",
			Help:    "Duration of each Redis script call, round trip included, by script and outcome (ok, error).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"script", "outcome"}),
		expiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arbiter_hold_expiries_total",
			Help: "Holds that expired unredeemed, counted when arbiter settles them (on the customer's next operation).",
		}),
		storeFull: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_store_full_total",
			Help: "Requests refused with 503 store_full because Redis reached its maxmemory, by route template.",
		}, []string{"route"}),
	}
	m.findings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arbiter_reconcile_findings_total",
		Help: "Findings of reconciliations by kind: imported, double_holding, orphan_grant, check_mismatch.",
	}, []string{"kind"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "arbiter_reconcile_last_success_timestamp_seconds",
		Help: "When a reconciliation last read the product's holdings feed completely and trusted it (Unix seconds).",
	}, []string{"product"})
	m.clockOffset = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "arbiter_clock_offset_seconds",
		Help: "Redis's clock minus this host's, last measured (TIME, midpoint of the round trip); arbiter runs on Redis's.",
	})
	m.connsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arbiter_http_connections_closed_for_cap_total",
		Help: "Client connections closed to stay under the connection cap, by kind: silent (no request within its grace), idle (keep-alive), new (a flood of new ones), incoming (refused: every other one busy).",
	}, []string{"kind"})
	reg.MustRegister(m.checks, m.redemptions, m.cancellations, m.releases, m.imports, m.requests, m.scripts, m.expiries, m.storeFull,
		m.findings, m.lastSuccess, m.clockOffset, m.connsClosed,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo())
	return m
}

// buildInfo is arbiter_build_info{version, revision, go_version} 1.
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "unknown", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = bi.Main.Version, bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "arbiter_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "go_version": goVersion},
	})
	g.Set(1)
	return g
}

// ReconcileFinding counts one reconciliation finding; it has the
// signature of reconcile.Reconciler's OnFinding.
func (m *Metrics) ReconcileFinding(kind reconcile.FindingKind) {
	m.findings.WithLabelValues(string(kind)).Inc()
}

// ReconcileSourceDone records a product's feed read completely and
// trusted; it has the signature of reconcile.Reconciler's OnSourceDone.
func (m *Metrics) ReconcileSourceDone(product string, at time.Time) {
	m.lastSuccess.WithLabelValues(product).Set(float64(at.UnixMilli()) / 1000)
}

// Registry returns the registry the metrics are on, for adding more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ClockOffset records the measured offset of Redis's clock to this
// host's; it has the signature of redisstore.ClockOptions.Observe.
func (m *Metrics) ClockOffset(d time.Duration) { m.clockOffset.Set(d.Seconds()) }

// ObserveConnections exports the open client connections and the cap,
// read at every scrape, as arbiter_http_connections_open and
// arbiter_http_connections_max.
func (m *Metrics) ObserveConnections(open func() int, max int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "arbiter_http_connections_open",
		Help: "Client connections open now (the API's listener).",
	}, func() float64 { return float64(open()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "arbiter_http_connections_max",
		Help: "The cap on open client connections (ARBITER_MAX_CONNECTIONS).",
	}, func() float64 { return float64(max) }))
}

// ConnectionClosed counts one connection closed for the cap; it has the
// signature of connlimit.Limiter's OnClose.
func (m *Metrics) ConnectionClosed(kind string) { m.connsClosed.WithLabelValues(kind).Inc() }

// HoldExpired counts one expired hold; it has the signature of
// redisstore.Options.OnExpiry.
func (m *Metrics) HoldExpired() { m.expiries.Inc() }

// storeFullRefused counts one request refused with store_full.
func (m *Metrics) storeFullRefused(route string) { m.storeFull.WithLabelValues(route).Inc() }

// ObserveScript records one Redis script call; it has the signature of
// redisstore.Options.Observe.
func (m *Metrics) ObserveScript(script string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.scripts.WithLabelValues(script, outcome).Observe(d.Seconds())
}

// PoolStats are the connection-pool figures of the store's Redis client
// (go-redis's PoolStats, which package web does not import).
type PoolStats struct {
	Hits, Misses, Timeouts            uint64 // requests served from the pool, dialled, timed out waiting
	TotalConns, IdleConns, StaleConns uint64 // connections now open, idle, and closed as stale so far
}

// ObserveCertificate exports when the certificate leaf returns expires, as
// arbiter_tls_certificate_expiry_timestamp_seconds{certificate=name} (Unix
// seconds). leaf is read at every scrape, so a reloaded certificate shows
// at once; alert when the gauge minus time() falls below a fortnight.
func (m *Metrics) ObserveCertificate(name string, leaf func() *x509.Certificate) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "arbiter_tls_certificate_expiry_timestamp_seconds",
		Help:        "When the TLS certificate arbiter presents expires (NotAfter, Unix seconds): the listener's, and its client certificate to Redis.",
		ConstLabels: prometheus.Labels{"certificate": name},
	}, func() float64 { return float64(leaf().NotAfter.Unix()) }))
}

// ObservePool exports stats, read at every scrape, as
// arbiter_redis_pool_connections{state} and arbiter_redis_pool_requests_total{result}.
func (m *Metrics) ObservePool(stats func() PoolStats) {
	m.reg.MustRegister(&poolCollector{stats: stats})
}

type poolCollector struct{ stats func() PoolStats }

var (
	poolConnsDesc = prometheus.NewDesc("arbiter_redis_pool_connections",
		"Redis pool connections by state: total and idle now open, stale closed so far.", []string{"state"}, nil)
	poolRequestsDesc = prometheus.NewDesc("arbiter_redis_pool_requests_total",
		"Connection requests to the Redis pool by result: hit, miss (dialled), timeout.", []string{"result"}, nil)
)

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConnsDesc
	ch <- poolRequestsDesc
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.stats()
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.TotalConns), "total")
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.StaleConns), "stale")
	ch <- prometheus.MustNewConstMetric(poolRequestsDesc, prometheus.CounterValue, float64(s.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(poolRequestsDesc, prometheus.CounterValue, float64(s.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(poolRequestsDesc, prometheus.CounterValue, float64(s.Timeouts), "timeout")
}

// handler serves the registry in the Prometheus text format.
func (m *Metrics) handler() echo.HandlerFunc {
	return echo.WrapHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
}

// observeRequests times every request. It runs outside accessLog, which
// writes a handler's error, so the status it sees is the one sent.
func (m *Metrics) observeRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route := c.Path()
		if route == "" || c.Response().Status == 404 && validation.ReasonOf(err) == validation.ReasonNotFound {
			route = "unmatched" // arbitrary paths must not become label values
		}
		m.requests.WithLabelValues(c.Request().Method, route, strconv.Itoa(c.Response().Status)).
			Observe(time.Since(start).Seconds())
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
	m      *Metrics
	policy *validation.Policy
}

// product is the label of a product name a client sent: only the policy's
// names, so no client can create label values.
func (s countingService) product(name string) string {
	if _, ok := s.policy.Rule(name); ok {
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
	m *Metrics
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
func (m *Metrics) instrument(cfg *Config) {
	cfg.Service = countingService{Service: cfg.Service, m: m, policy: cfg.Policy}
	cfg.Tokens = countingTokens{Tokens: cfg.Tokens, m: m}
}
