package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbiter-bank/arbiter/validation"
)

// Archive is the durable record's metrics: the outboxes' backlog and lag,
// what the exporter archived, the sweeper's expiries, and the webhook
// deliveries. Registered by Set.Archive, when arbiter has an archive.
type Archive struct {
	waiting    prometheus.Gauge
	fullest    prometheus.Gauge
	oldest     prometheus.Gauge
	archived   prometheus.Counter
	errors     prometheus.Counter
	swept      prometheus.Counter
	deliveries *prometheus.CounterVec
	pending    prometheus.Gauge
}

// Archive registers the durable record's metrics; bound is the outbox's
// bound per slot (ARBITER_OUTBOX_MAX), published beside the fullest
// outbox so that an alert can compare them.
func (m *Set) Archive(bound int) *Archive {
	a := &Archive{
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arbiter_outbox_records",
			Help: "Records waiting in the outboxes (every slot's) for the archive, at the exporter's last round.",
		}),
		fullest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arbiter_outbox_fullest_records",
			Help: "Records in the fullest slot's outbox at the exporter's last round; at arbiter_outbox_bound_records, decisions of that slot's customers are refused (503 outbox_full).",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arbiter_outbox_lag_seconds",
			Help: "Age of the oldest record not yet archived, at the exporter's last round (0: every outbox empty).",
		}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arbiter_archive_records_total",
			Help: "Records this instance wrote to the archive for the first time.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arbiter_archive_errors_total",
			Help: "Exporter rounds that failed (the archive or Redis refused); the records wait in their outboxes.",
		}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arbiter_holds_swept_total",
			Help: "Expired holds the sweeper recorded because nobody read their customer.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx) or failed (retried later).",
		}, []string{"outcome"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arbiter_webhook_pending",
			Help: "Webhook deliveries not yet acknowledged, every subscriber's, at the exporter's last round.",
		}),
	}
	boundGauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "arbiter_outbox_bound_records",
		Help: "Records a slot's outbox may hold (ARBITER_OUTBOX_MAX).",
	})
	boundGauge.Set(float64(bound))
	m.reg.MustRegister(a.waiting, a.fullest, a.oldest, a.archived, a.errors, a.swept, a.deliveries, a.pending, boundGauge)
	return a
}

// ExportRound records one exporter round; it has the signature of
// validation.Exporter.Rounds.
func (a *Archive) ExportRound(r validation.ExportRound) {
	a.waiting.Set(float64(r.Waiting))
	a.fullest.Set(float64(r.Fullest))
	a.oldest.Set(r.Oldest.Seconds())
	a.archived.Add(float64(r.Archived))
	a.swept.Add(float64(r.Swept))
	if r.Err != nil {
		a.errors.Inc()
	}
}

// WebhookAttempt counts one delivery attempt.
func (a *Archive) WebhookAttempt(delivered bool) {
	outcome := "failed"
	if delivered {
		outcome = "delivered"
	}
	a.deliveries.WithLabelValues(outcome).Inc()
}

// WebhookPending sets the deliveries not yet acknowledged.
func (a *Archive) WebhookPending(n int64) { a.pending.Set(float64(n)) }
