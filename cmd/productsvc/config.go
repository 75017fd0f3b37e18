package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// config is every setting of the service. Each has a flag and an
// environment variable; a flag given on the command line wins.
type config struct {
	Addr              string
	Product           string
	ID                string
	DB                string
	ArbiterURL        string
	ArbiterKey        string
	Issuer            string
	RequestTimeout    time.Duration
	ReconcileInterval time.Duration
	ReconcileMinAge   time.Duration
	ShutdownTimeout   time.Duration
	LogLevel          string
	// Fault is a test-only hook (env PRODUCTSVC_FAULT only): crash-after-redeem
	// exits with status 3 right after arbiter granted, before the insert;
	// fail-insert makes every local insert fail, forcing compensation.
	Fault string
}

type setting struct {
	flag, env, def, usage string
	dur                   *time.Duration
	str                   *string
}

func (c *config) settings() []setting {
	return []setting{
		{flag: "addr", env: "PRODUCTSVC_ADDR", def: "127.0.0.1:8081", usage: "listen address", str: &c.Addr},
		{flag: "product", env: "PRODUCTSVC_PRODUCT", usage: "the arbiter product this service issues, e.g. credit_card (required)", str: &c.Product},
		{flag: "id", env: "PRODUCTSVC_ID", usage: "this service's client id at arbiter: the approval tokens' audience, e.g. card-service (required)", str: &c.ID},
		{flag: "db", env: "PRODUCTSVC_DB", usage: "SQLite database file; default <id>.db", str: &c.DB},
		{flag: "arbiter-url", env: "PRODUCTSVC_ARBITER_URL", def: "http://127.0.0.1:8080", usage: "arbiter's base URL", str: &c.ArbiterURL},
		{flag: "arbiter-key", env: "PRODUCTSVC_ARBITER_KEY", usage: "this service's API key at arbiter, with roles checker and redeemer (required; prefer the env var)", str: &c.ArbiterKey},
		{flag: "issuer", env: "PRODUCTSVC_ISSUER", def: "arbiter", usage: "the approval tokens' required iss", str: &c.Issuer},
		{flag: "request-timeout", env: "PRODUCTSVC_REQUEST_TIMEOUT", def: "10s", usage: "upper bound of one API request", dur: &c.RequestTimeout},
		{flag: "reconcile-interval", env: "PRODUCTSVC_RECONCILE_INTERVAL", def: "30s", usage: "how often pending work is settled with arbiter", dur: &c.ReconcileInterval},
		{flag: "reconcile-min-age", env: "PRODUCTSVC_RECONCILE_MIN_AGE", def: "1m", usage: "pending work younger than this may still be in flight and is left alone (must exceed -request-timeout)", dur: &c.ReconcileMinAge},
		{flag: "shutdown-timeout", env: "PRODUCTSVC_SHUTDOWN_TIMEOUT", def: "10s", usage: "how long in-flight requests may finish after SIGTERM", dur: &c.ShutdownTimeout},
		{flag: "log-level", env: "PRODUCTSVC_LOG_LEVEL", def: "info", usage: "debug, info, warn or error", str: &c.LogLevel},
	}
}

var errHelp = errors.New("help requested")

// parseConfig reads flags over environment variables over defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("productsvc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := c.settings()
	for _, s := range settings {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		usage := fmt.Sprintf("%s (env %s)", s.usage, s.env)
		if s.str != nil {
			fs.StringVar(s.str, s.flag, def, usage)
			continue
		}
		d, err := time.ParseDuration(def)
		if err != nil {
			return c, fmt.Errorf("%s=%q: %w", s.env, def, err)
		}
		fs.DurationVar(s.dur, s.flag, d, usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: productsvc -product PRODUCT -id CLIENT_ID [flags]\n\nEvery flag can also be set by its environment variable; a flag wins.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.Fault = getenv("PRODUCTSVC_FAULT")
	return c, c.check(settings)
}

func (c *config) check(settings []setting) error {
	var missing []string
	if c.Product == "" {
		missing = append(missing, "-product (PRODUCTSVC_PRODUCT)")
	}
	if c.ID == "" {
		missing = append(missing, "-id (PRODUCTSVC_ID)")
	}
	if c.ArbiterKey == "" {
		missing = append(missing, "-arbiter-key (PRODUCTSVC_ARBITER_KEY)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	for _, s := range settings {
		if s.dur != nil && *s.dur <= 0 {
			return fmt.Errorf("-%s must be positive", s.flag)
		}
	}
	switch c.Fault {
	case "", "crash-after-redeem", "fail-insert":
	default:
		return fmt.Errorf("PRODUCTSVC_FAULT=%q: use crash-after-redeem or fail-insert", c.Fault)
	}
	if c.DB == "" {
		c.DB = c.ID + ".db"
	}
	return nil
}
