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
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/cmd/internal/certs"
	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/internal/metrics"
	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/abandon"
	"github.com/arbiter-bank/arbiter/validation/bureau"
	"github.com/arbiter-bank/arbiter/validation/reconcile/redisrecon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/web"
	"github.com/arbiter-bank/arbiter/web/redissessions"
)

// Demo clients of embedded mode, printed at start.
var demoClients = []web.Client{
	{ID: "branch-portal", Key: "demo-checker-key", Roles: []validation.Role{validation.RoleChecker}},
	{ID: "card-service", Key: "demo-card-key", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}},
	{ID: "loan-service", Key: "demo-loan-key", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}},
	{ID: "ops", Key: "demo-admin-key", Roles: []validation.Role{validation.RoleAdmin}},
}

// The demo branch agent of embedded mode, printed at start.
const demoAgentUsername, demoAgentPassword = "demo", "demo"

// run is the whole program; main only calls it. A subcommand (keygen,
// hash, migrate) returns when done; the service returns when ctx is
// cancelled (after a graceful shutdown) or when the server fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if ok, err := runCommand(ctx, args[1:], getenv, stdin, stdout, stderr); ok {
		if errors.Is(err, errHelp) {
			return nil
		}
		return err
	}
	local, err := hostClock(getenv)
	if err != nil {
		return err
	}
	return runOn(ctx, local, args, getenv, stdout, stderr)
}

// faultClockSkewEnv shifts the host clock by a duration (e.g. 5m): a fault
// hook, like productsvc's PRODUCTSVC_FAULT, for tests that run instances
// whose host clocks disagree as real processes (the cross-system model's
// skewed instance). Never set it in a deployment.
const faultClockSkewEnv = "ARBITER_FAULT_CLOCK_SKEW"

// hostClock is time.Now, shifted by ARBITER_FAULT_CLOCK_SKEW when set.
func hostClock(getenv func(string) string) (func() time.Time, error) {
	v := getenv(faultClockSkewEnv)
	if v == "" {
		return time.Now, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", faultClockSkewEnv, v, err)
	}
	return func() time.Time { return time.Now().Add(d) }, nil
}

// runOn is run on the host clock local: tests give two instances clocks
// that disagree, as two hosts' may.
func runOn(ctx context.Context, local func() time.Time, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args[1:], getenv, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	log, flushLog, err := newServerLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer flushLog()
	redisstore.SetLogger(log)                      // go-redis's own lines, JSON like the rest
	tracing, err := startTracing(ctx, getenv, log) // OTEL_* variables; off without an endpoint
	if err != nil {
		return err
	}
	defer stopTracing(tracing, log)

	policy, err := loadPolicy(cfg.PolicyFile)
	if err != nil {
		return err
	}
	clients, err := loadClients(cfg)
	if err != nil {
		return err
	}
	if err := checkCertClients(cfg, clients); err != nil { // see tls.go
		return err
	}
	tlsCfg, tlsCert, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	procMetrics := metrics.New(nil)
	if tlsCert != nil {
		procMetrics.ObserveCertificate("listener", tlsCert.Leaf)
	}
	rdb, closeRedis, err := openRedis(cfg, log, procMetrics.ObserveCertificate)
	if err != nil {
		return err
	}
	defer closeRedis()
	if err := traceRedis(rdb, tracing); err != nil {
		return err
	}

	procMetrics.ObservePool(poolStats(rdb))
	storeOpts := storeOptions(cfg) // WAIT and the recent audit, see redis.go
	storeOpts.Observe = procMetrics.ObserveScript
	storeOpts.OnExpiry = procMetrics.HoldExpired
	storeOpts.AutoPipeline = cfg.autoPipeline(tracing.Enabled())
	storeOpts.CompactGrants = cfg.CompactGrants == "on"
	if cfg.ArchiveURL != "" {
		storeOpts.OutboxCap = cfg.OutboxMax
	}
	store := redisstore.New(rdb, storeOpts)
	loadCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := store.Load(loadCtx); err != nil {
		// Not fatal: /readyz says 503 until Redis answers, and scripts
		// fall back to EVAL (the function library is loaded on its first
		// call) when they are not loaded yet.
		log.Warn("redis not reachable at start; serving 503 until it is", "err", hideCredentials(err, cfg.RedisURL))
	} else if !store.Functions() {
		log.Info("redis has no functions (before 7, or an ACL without FUNCTION): the check and the redemptions run as scripts, which cost more Redis time per call")
	}
	// Branch sessions and the sign-in throttle live in the same Redis (the
	// embedded one in demo mode), so every instance shares them. Not fatal
	// either, and an unreachable Redis was just logged: a script not loaded
	// is sent whole once (EVAL), then runs as EVALSHA.
	sessions := redissessions.New(rdb, redissessions.Options{Observe: procMetrics.ObserveScript})
	_ = sessions.Load(loadCtx)
	cancel()

	// One clock for every instance: Redis's (see "Why the invariant
	// holds"). /readyz is 503 until its offset has been measured.
	clock := newClock(ctx, cfg, rdb, local, log, procMetrics)
	now := clock.Now
	issuer, err := loadIssuer(cfg, now)
	if err != nil {
		return err
	}

	abandoner := &abandon.Queue{Store: store, Log: log, Now: now}
	go abandoner.Run(ctx)
	svc := &validation.Service{Store: store, Policy: policy, Abandoner: abandoner, Now: now,
		OTPFailures: cfg.OTPFailures, OTPWindow: cfg.OTPWindow}
	if policy.Rating != nil {
		svc.Ratings = bureau.New(*policy.Rating, &http.Client{})
	}
	rec, err := newReconciler(ctx, policy, store, redisrecon.New(rdb, store), procMetrics, log, cfg.production()) // reconcile.go
	if err != nil {
		return err
	}
	rec.Now = now
	go rec.Schedule(ctx, instanceID())
	closeArchive, err := startArchive(ctx, cfg, store, clients, now, log, procMetrics) // archive.go
	if err != nil {
		return err
	}
	defer closeArchive()
	handler := web.New(web.Config{
		Reconciler: rec,
		Service:    svc, Tokens: issuer, Policy: policy, Clients: clients,
		ParsePolicy: policyfile.Parse, // POST /v1/policy/impact's candidates
		Ready:       ready(clock, store),
		Now:         now,
		Logger:      log, RequestTimeout: cfg.RequestTimeout,
		Registry:      procMetrics.Registry(),
		SecureCookies: cfg.SecureCookies, SessionIdle: cfg.SessionIdle,
		Sessions:       sessions,
		TracerProvider: tracing.Provider, Propagator: tracing.Propagator,
	})

	prof, err := servePprof(cfg.PprofAddr, log)
	if err != nil {
		return err
	}
	if prof != nil {
		defer prof.Close()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
		TLSConfig:         tlsCfg,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn), // e.g. failed TLS handshakes
	}
	limitConnections(srv, cfg, local, procMetrics, log) // conns.go
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		hup, stopHup := certs.ReloadSignals()
		defer stopHup()
		go tlsCert.Watch(ctx, cfg.TLSReloadInterval, hup, log.With("tls", "listener"))
		logTLS(log, cfg, tlsCert)
	}
	base := scheme + "://" + ln.Addr().String()
	fmt.Fprintf(stdout, "arbiter listening on %s\n", base)
	if !cfg.production() {
		printDemo(stdout, base)
	}
	log.Info("serving", "addr", ln.Addr().String(), "production", cfg.production(), "products", policy.Names(), "kid", issuer.KeyID())

	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate comes from tlsCfg.GetCertificate
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Graceful shutdown: stop accepting, let in-flight requests finish
	// within the deadline; the deferred closeRedis then closes Redis.
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout.String())
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// Requests that drained may have left checks of unknown outcome: one
	// last try to give them up before Redis is closed.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelFlush()
	abandoner.Flush(flushCtx)
	// A reconciliation (its context, ctx, is cancelled) saves its final
	// state, failed "interrupted by shutdown", before Redis is closed.
	if err := rec.Wait(shutCtx); err != nil {
		log.Warn("a reconciliation did not save its final state before the shutdown deadline", "err", err)
	}
	log.Info("stopped: every in-flight request finished")
	return nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func loadPolicy(path string) (*validation.Policy, error) {
	if path == "" {
		return validation.DefaultPolicy(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := policyfile.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func loadClients(cfg config) (*web.Clients, error) {
	if cfg.ClientsFile == "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(demoAgentPassword), bcrypt.DefaultCost)
		if err != nil {
			return nil, fmt.Errorf("demo agent: %w", err)
		}
		agents := []web.Agent{{Username: demoAgentUsername, PasswordBcrypt: string(hash), Branch: "Demo branch"}}
		return web.NewClients(append([]web.Client(nil), demoClients...), agents)
	}
	data, err := os.ReadFile(cfg.ClientsFile)
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	cs, err := clientauth.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.ClientsFile, err)
	}
	return cs, nil
}

// loadIssuer loads the signing and verify keys; now is the clock the
// tokens redeemed are checked against.
func loadIssuer(cfg config, now func() time.Time) (*tokens.Issuer, error) {
	var key []byte
	if cfg.SigningKeyFile != "" {
		pem, err := os.ReadFile(cfg.SigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		key = pem
	}
	ic := tokens.IssuerConfig{Issuer: cfg.Issuer, Now: now}
	if key == nil {
		k, err := tokens.GenerateKey() // demo mode only: cfg.check refuses this in production
		if err != nil {
			return nil, err
		}
		ic.Key = k
	} else {
		k, err := tokens.ParsePrivateKeyPEM(key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.SigningKeyFile, err)
		}
		ic.Key = k
	}
	if cfg.VerifyKeysFile != "" {
		pem, err := os.ReadFile(cfg.VerifyKeysFile)
		if err != nil {
			return nil, fmt.Errorf("verify keys: %w", err)
		}
		if ic.VerifyKeys, err = tokens.ParsePublicKeysPEM(pem); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.VerifyKeysFile, err)
		}
	}
	return tokens.NewIssuer(ic)
}

func printDemo(w io.Writer, base string) {
	var b strings.Builder
	b.WriteString("\nDEMO MODE (embedded Redis, in memory only). API keys:\n")
	for _, c := range demoClients {
		roles := make([]string, len(c.Roles))
		for i, r := range c.Roles {
			roles[i] = string(r)
		}
		fmt.Fprintf(&b, "  %-14s %-18s %s\n", c.ID, c.Key, strings.Join(roles, ","))
	}
	fmt.Fprintf(&b, "Branch UI: %s/branch/  (sign in as %s / %s)\n", base, demoAgentUsername, demoAgentPassword)
	fmt.Fprintf(&b, "Try:\n  curl -s -X POST %s/v1/checks -H 'Authorization: Bearer demo-checker-key' -H 'Content-Type: application/json' -d '{\"customer_id\":\"C-1001\",\"product\":\"credit_card\"}'\n\n", base)
	io.WriteString(w, b.String())
}

// poolStats reads go-redis's pool figures for the metrics.
func poolStats(rdb redis.UniversalClient) func() metrics.PoolStats {
	return func() metrics.PoolStats {
		s := rdb.PoolStats()
		return metrics.PoolStats{Hits: uint64(s.Hits), Misses: uint64(s.Misses), Timeouts: uint64(s.Timeouts),
			TotalConns: uint64(s.TotalConns), IdleConns: uint64(s.IdleConns), StaleConns: uint64(s.StaleConns)}
	}
}

// ready is /readyz's test: the clock offset to Redis is known (and
// recent), and Redis answers.
func ready(clock *redisstore.Clock, store *redisstore.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := clock.Ready(); err != nil {
			return err
		}
		return store.Ping(ctx)
	}
}

// newClock is the clock of the Redis behind rdb (the host clock itself in
// embedded mode, where Redis is this process), measured once now and then
// every redisstore.DefaultClockInterval until ctx ends.
func newClock(ctx context.Context, cfg config, rdb redis.UniversalClient, local func() time.Time, log *slog.Logger, m *metrics.Set) *redisstore.Clock {
	if !cfg.production() {
		rdb = nil
	}
	clock := redisstore.NewClock(rdb, redisstore.ClockOptions{Local: local, Log: log, Observe: m.ClockOffset})
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := clock.Sync(syncCtx); err != nil {
		log.Warn("could not measure the clock offset to Redis at start; /readyz says 503 until it is measured", "err", err)
	}
	go clock.Run(ctx)
	return clock
}
