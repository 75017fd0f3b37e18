package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/internal/telemetry"
	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/httpapi"
	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

// exitFault is the exit status of the crash-after-redeem fault.
const exitFault = 3

// run is the whole program; main only calls it. It returns when ctx is
// cancelled (after a graceful shutdown) or when the server fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args[1:], getenv, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log level %q: use debug, info, warn or error", cfg.LogLevel)
	}
	tracing, tcfg, err := telemetry.Setup(ctx, getenv, cfg.ID) // OTEL_* variables; off without an endpoint
	if err != nil {
		return err
	}
	var logHandler slog.Handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	if tracing.Enabled() {
		logHandler = telemetry.LogHandler(logHandler) // trace_id on lines logged in a request
	}
	log := slog.New(logHandler).With("service", cfg.ID)
	if cfg.FeedKey == "" {
		// productsvc has no production mode to refuse in; say it loudly.
		log.Warn("holdings feed open: GET /v1/holdings lists every customer holding the product to anyone who asks; set PRODUCTSVC_FEED_KEY (arbiter's reconciler sends it)")
	}
	callers, err := loadCallers(cfg) // see clients.go
	if err != nil {
		return err
	}
	if callers == nil {
		log.Warn("API open: anyone who reaches the service may apply with a customer's OTP (wrong codes burn the customer's hold and lock its redemptions) and close products; set PRODUCTSVC_CLIENTS")
	}
	defer flushTracing(tracing, log)
	if tracing.Enabled() {
		log.Info("tracing on", "endpoint", tcfg.RedactedEndpoint(), "protocol", tcfg.Protocol, "service", tcfg.ServiceName, "sampler", tcfg.SamplerName)
	}

	store, err := sqlitestore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	tm, err := loadTLS(cfg) // see tls.go
	if err != nil {
		return err
	}
	arb, err := client.New(client.Config{BaseURL: cfg.ArbiterURL, APIKey: cfg.ArbiterKey, ClientID: cfg.ID, Issuer: cfg.Issuer,
		TLSConfig: tm.arbiter, TracerProvider: tracing.Provider, Propagator: tracing.Propagator})
	if err != nil {
		return err
	}
	svc := &issuing.Service{Product: cfg.Product, ClientID: cfg.ID, Arbiter: arb, Store: store, Log: log, Fault: fault(cfg.Fault, log)}

	// Settle what a previous run left half done before taking new work.
	var reconciled atomic.Bool
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if _, err := svc.Reconcile(startCtx, 0); err != nil {
		log.Warn("start-up reconciliation failed; retrying in the background", "err", err)
	} else {
		reconciled.Store(true)
	}
	cancel()

	webhooks, err := webhookVerifier(cfg)
	if err != nil {
		return err
	}
	handler := httpapi.New(httpapi.Config{Service: svc, Logger: log, FeedKey: cfg.FeedKey, Authenticate: callers, Webhooks: webhooks, Ready: func(ctx context.Context) error {
		if !reconciled.Load() {
			return errors.New("start-up reconciliation not done")
		}
		return store.Ping(ctx)
	}})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           traceRequests(http.TimeoutHandler(routeOnly(handler), cfg.RequestTimeout, `{"reason":"timeout"}`), tracing),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
		TLSConfig:         tm.listener,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn), // e.g. failed TLS handshakes
	}
	scheme := "http"
	if tm.listener != nil {
		scheme = "https"
	}
	tm.watch(ctx, cfg.TLSReloadInterval, log)
	fmt.Fprintf(stdout, "productsvc listening on %s://%s\n", scheme, ln.Addr())
	log.Info("serving", "addr", ln.Addr().String(), "product", cfg.Product, "db", cfg.DB, "arbiter", cfg.ArbiterURL, "fault", cfg.Fault)

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	go reconcileLoop(loopCtx, svc, cfg, &reconciled, time.Now(), log)

	errc := make(chan error, 1)
	go func() {
		if tm.listener != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate comes from tm.listener.GetCertificate
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout)
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(shutCtx)
}

// reconcileLoop settles pending work every interval, and first retries the
// start-up reconciliation if it failed.
func reconcileLoop(ctx context.Context, svc *issuing.Service, cfg config, started *atomic.Bool, start time.Time, log *slog.Logger) {
	t := time.NewTicker(cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Work left by an earlier run is settled whatever its age; work of
		// this run only once it cannot be in flight any more.
		minAge := min(cfg.ReconcileMinAge, time.Since(start))
		if _, err := svc.Reconcile(ctx, minAge); err != nil {
			log.Warn("reconciliation failed", "err", err)
			continue
		}
		started.Store(true)
	}
}

// fault returns the test-only fault hook named by PRODUCTSVC_FAULT.
func fault(name string, log *slog.Logger) func(string) error {
	switch name {
	case "crash-after-redeem":
		return func(point string) error {
			if point == issuing.FaultAfterRedeem {
				log.Error("FAULT crash-after-redeem: exiting between redeem and insert")
				os.Exit(exitFault)
			}
			return nil
		}
	case "fail-insert":
		return func(point string) error {
			if point == issuing.FaultInsert {
				return errors.New("fault fail-insert: local insert refused")
			}
			return nil
		}
	}
	return nil
}

// webhookVerifier verifies arbiter's announcements with
// PRODUCTSVC_WEBHOOK_SECRET; nil when it is not set (the route is off).
func webhookVerifier(cfg config) (*client.WebhookVerifier, error) {
	if cfg.WebhookSecret == "" {
		return nil, nil
	}
	v, err := client.NewWebhookVerifier(cfg.WebhookSecret)
	if err != nil {
		return nil, fmt.Errorf("PRODUCTSVC_WEBHOOK_SECRET: %w", err)
	}
	return v, nil
}
