package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/internal/metrics"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/pgarchive"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/web/webhooks"
)

// startArchive runs the durable record when ARBITER_ARCHIVE_URL is set:
// the exporter (outboxes to PostgreSQL, and the sweeper of expired holds)
// and the webhook sender (the archive's queue to the subscribers of the
// clients file), until ctx ends. PostgreSQL need not be up at start: the
// archive is opened on first use and again after each failure, and the
// records wait in their outboxes meanwhile. The returned func closes the
// archive.
func startArchive(ctx context.Context, cfg config, store *redisstore.Store, clients *clientauth.Clients, now func() time.Time,
	log *slog.Logger, m *metrics.Set) (func(), error) {
	if cfg.ArchiveURL == "" {
		if cfg.production() {
			log.Warn("no archive (ARBITER_ARCHIVE_URL): the audit keeps only its recent part in Redis, and no webhook is sent")
		}
		return func() {}, nil
	}
	hooks := clients.Webhooks()
	subs := make([]validation.Subscriber, len(hooks))
	senderSubs := make([]webhooks.Subscriber, len(hooks))
	for i, w := range hooks {
		subs[i] = w.Subscriber()
		senderSubs[i] = webhooks.Subscriber{ID: w.ID, URL: w.URL, Secret: w.Secret, Types: w.Types}
	}
	am := m.Archive(cfg.OutboxMax)
	arch := &lazyArchive{dsn: cfg.ArchiveURL, opts: pgarchive.Options{Subscribers: subs}, log: log}
	openCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := arch.get(openCtx); err != nil {
		log.Error("archive not reachable at start: records wait in the outboxes until it is", "err", err)
	}
	cancel()

	sender, err := webhooks.New(webhooks.Options{Queue: arch, Subscribers: senderSubs, Now: now, Log: log,
		Observe: func(a webhooks.Attempt) { am.WebhookAttempt(a.Delivered) }})
	if err != nil {
		return nil, err
	}
	alarm := &exportAlarm{log: log, bound: int64(cfg.OutboxMax)}
	ex := &validation.Exporter{Outbox: store, Archive: arch, Owner: instanceID(), Now: now, Interval: cfg.ExportInterval,
		Archived: sender.Wake,
		Rounds: func(r validation.ExportRound) {
			am.ExportRound(r)
			alarm.round(r)
			if a, ok := arch.open(); ok && len(hooks) > 0 {
				if depth, err := a.QueueDepth(ctx); err == nil {
					var n int64
					for _, d := range depth {
						n += d
					}
					am.WebhookPending(n)
				}
			}
		}}
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ex.Run(ctx) }()
	go func() { defer wg.Done(); sender.Run(ctx) }()
	log.Info("archive on", "outbox_max", cfg.OutboxMax, "export_interval", cfg.ExportInterval.String(), "webhook_subscribers", len(hooks))
	return func() {
		stop()
		wg.Wait()
		arch.close()
	}, nil
}

// exportAlarm writes the alert-worthy log lines of the exporter's rounds:
// one when the archive starts refusing (then once a minute while it does)
// and one when it takes records again; one when an outbox passes 80% of
// its bound, where decisions start being refused.
type exportAlarm struct {
	log      *slog.Logger
	bound    int64
	failing  bool
	lastDown time.Time // the last "archive unavailable" line
	lastFull time.Time // the last "near its bound" line
}

func (a *exportAlarm) round(r validation.ExportRound) {
	switch {
	case r.ArchiveErr != nil && (!a.failing || time.Since(a.lastDown) >= time.Minute):
		a.failing, a.lastDown = true, time.Now()
		a.log.Error("archive unavailable: records wait in the outboxes; decisions are refused (503 outbox_full) once a slot's outbox holds ARBITER_OUTBOX_MAX",
			"err", r.ArchiveErr, "waiting", r.Waiting, "fullest", r.Fullest, "bound", a.bound, "lag", r.Oldest.String())
	case r.ArchiveErr == nil && a.failing && r.Err == nil:
		a.failing = false
		a.log.Info("archive available again", "archived", r.Archived, "waiting", r.Waiting)
	}
	if r.Fullest*5 >= a.bound*4 && time.Since(a.lastFull) >= time.Minute {
		a.lastFull = time.Now()
		a.log.Error("an outbox is near its bound: its customers' decisions will be refused (503 outbox_full)",
			"fullest", r.Fullest, "bound", a.bound, "lag", r.Oldest.String())
	}
}

// lazyArchive is the PostgreSQL archive, opened on first use and again
// after a failure to open (PostgreSQL down at start).
type lazyArchive struct {
	dsn  string
	opts pgarchive.Options
	log  *slog.Logger
	mu   sync.Mutex
	a    *pgarchive.Archive
}

var (
	_ validation.Archive    = (*lazyArchive)(nil)
	_ validation.Deliveries = (*lazyArchive)(nil)
)

func (l *lazyArchive) get(ctx context.Context) (*pgarchive.Archive, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.a != nil {
		return l.a, nil
	}
	a, err := pgarchive.Open(ctx, l.dsn, l.opts)
	if err != nil {
		return nil, err
	}
	l.a = a
	return a, nil
}

// open returns the archive if it is open.
func (l *lazyArchive) open() (*pgarchive.Archive, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.a, l.a != nil
}

func (l *lazyArchive) close() {
	if a, ok := l.open(); ok {
		a.Close()
	}
}

func (l *lazyArchive) Write(ctx context.Context, recs []validation.Record) (int, error) {
	a, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return a.Write(ctx, recs)
}

func (l *lazyArchive) Claim(ctx context.Context, subscriber string, now time.Time, lease time.Duration, n int) ([]validation.Delivery, error) {
	a, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return a.Claim(ctx, subscriber, now, lease, n)
}

func (l *lazyArchive) Done(ctx context.Context, subscriber, id string) error {
	a, err := l.get(ctx)
	if err != nil {
		return err
	}
	return a.Done(ctx, subscriber, id)
}

func (l *lazyArchive) Retry(ctx context.Context, subscriber, id string, at time.Time, why string) error {
	a, err := l.get(ctx)
	if err != nil {
		return err
	}
	return a.Retry(ctx, subscriber, id, at, why)
}
