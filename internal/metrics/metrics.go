// Package metrics is arbiter's process-wide Prometheus metrics: those of
// the store (script durations, hold expiries), the reconciler, the Redis
// clock and connection pool, the listener's connection cap, the TLS
// certificates, the build, the Go runtime and the process. cmd/arbiter
// wires each to the hook of the package it measures, and hands the
// registry to web, which adds the API's own metrics and serves them all
// at /metrics.
//
// Every label has a small, fixed set of values (script names, finding
// kinds, products of the policy, connection kinds); customer, check and
// client ids never appear. The names are a contract with whoever scrapes
// them (docs/operations.md lists them): never rename one.
package metrics

import (
	"crypto/x509"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/arbiter-bank/arbiter/validation/reconcile"
)

// Set is arbiter's process-wide metrics, on one registry. Each method with
// the signature of another package's hook is meant to be that hook.
//
// Hold expiries are counted through the store's OnExpiry hook: Redis drops
// an expired hold on its own, and the scripts settle it, and report it, on
// the customer's next operation; so the counter lags the expiry itself.
type Set struct {
	reg *prometheus.Registry

	scripts     *prometheus.HistogramVec
	expiries    prometheus.Counter
	findings    *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	clockOffset prometheus.Gauge
	connsClosed *prometheus.CounterVec
}

// New registers the process-wide metrics, the Go runtime's and the
// process's, and arbiter_build_info, on reg; a nil reg means a new
// registry (never the global default, so tests and servers stay apart).
func New(reg *prometheus.Registry) *Set {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Set{
		reg: reg,
		scripts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "arbiter_redis_script_duration_seconds",
			Help:    "Duration of each Redis script call, round trip included, by script and outcome (ok, error).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"script", "outcome"}),
		expiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arbiter_hold_expiries_total",
			Help: "Holds that expired unredeemed, counted when arbiter settles them (on the customer's next operation).",
		}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_reconcile_findings_total",
			Help: "Findings of reconciliations by kind: imported, double_holding, orphan_grant, check_mismatch.",
		}, []string{"kind"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "arbiter_reconcile_last_success_timestamp_seconds",
			Help: "When a reconciliation last read the product's holdings feed completely and trusted it (Unix seconds).",
		}, []string{"product"}),
		clockOffset: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arbiter_clock_offset_seconds",
			Help: "Redis's clock minus this host's, last measured (TIME, midpoint of the round trip); arbiter runs on Redis's.",
		}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_http_connections_closed_for_cap_total",
			Help: "Client connections closed to stay under the connection cap, by kind: silent (no request within its grace), idle (keep-alive), new (a flood of new ones), incoming (refused: every other one busy).",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.scripts, m.expiries, m.findings, m.lastSuccess, m.clockOffset, m.connsClosed,
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

// Registry returns the registry the metrics are on, for serving them and
// adding more.
func (m *Set) Registry() *prometheus.Registry { return m.reg }

// ObserveScript records one Redis script call; it has the signature of
// redisstore.Options.Observe (and redissessions.Options.Observe).
func (m *Set) ObserveScript(script string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.scripts.WithLabelValues(script, outcome).Observe(d.Seconds())
}

// HoldExpired counts one expired hold; it has the signature of
// redisstore.Options.OnExpiry.
func (m *Set) HoldExpired() { m.expiries.Inc() }

// ReconcileFinding counts one reconciliation finding; it has the
// signature of reconcile.Reconciler's OnFinding.
func (m *Set) ReconcileFinding(kind reconcile.FindingKind) {
	m.findings.WithLabelValues(string(kind)).Inc()
}

// ReconcileSourceDone records a product's feed read completely and
// trusted; it has the signature of reconcile.Reconciler's OnSourceDone.
func (m *Set) ReconcileSourceDone(product string, at time.Time) {
	m.lastSuccess.WithLabelValues(product).Set(float64(at.UnixMilli()) / 1000)
}

// ClockOffset records the measured offset of Redis's clock to this
// host's; it has the signature of redisstore.ClockOptions.Observe.
func (m *Set) ClockOffset(d time.Duration) { m.clockOffset.Set(d.Seconds()) }

// ObserveConnections exports the open client connections and the cap,
// read at every scrape, as arbiter_http_connections_open and
// arbiter_http_connections_max.
func (m *Set) ObserveConnections(open func() int, max int) {
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
func (m *Set) ConnectionClosed(kind string) { m.connsClosed.WithLabelValues(kind).Inc() }

// ObserveCertificate exports when the certificate leaf returns expires, as
// arbiter_tls_certificate_expiry_timestamp_seconds{certificate=name} (Unix
// seconds). leaf is read at every scrape, so a reloaded certificate shows
// at once; alert when the gauge minus time() falls below a fortnight.
func (m *Set) ObserveCertificate(name string, leaf func() *x509.Certificate) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "arbiter_tls_certificate_expiry_timestamp_seconds",
		Help:        "When the TLS certificate arbiter presents expires (NotAfter, Unix seconds): the listener's, and its client certificate to Redis.",
		ConstLabels: prometheus.Labels{"certificate": name},
	}, func() float64 { return float64(leaf().NotAfter.Unix()) }))
}

// PoolStats are the connection-pool figures of the store's Redis client
// (go-redis's PoolStats, which this package does not import).
type PoolStats struct {
	Hits, Misses, Timeouts            uint64 // requests served from the pool, dialled, timed out waiting
	TotalConns, IdleConns, StaleConns uint64 // connections now open, idle, and closed as stale so far
}

// ObservePool exports stats, read at every scrape, as
// arbiter_redis_pool_connections{state} and arbiter_redis_pool_requests_total{result}.
func (m *Set) ObservePool(stats func() PoolStats) {
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
