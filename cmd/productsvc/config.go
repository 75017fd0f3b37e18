package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/internal/envflag"
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
	// TLS of the listener and of the calls to arbiter (see tls.go).
	TLSCert, TLSKey   string        // listener pair; set: serve HTTPS only
	TLSClientCA       string        // set: every connection needs a client certificate of this CA
	TLSReloadInterval time.Duration // how often certificate files are checked for a change
	ArbiterCA         string        // CA verifying arbiter's certificate; empty: the system's roots
	ArbiterCert       string        // client certificate presented to arbiter
	ArbiterCertKey    string        // its private key
	FeedKey           string        // the bearer key GET /v1/holdings requires; "" leaves it open
	ClientsFile       string        // clients file (arbiter's format) of the callers of the API; "" leaves it open
	WebhookSecret     string        // whsec_ secret of arbiter's webhooks to POST /webhooks/arbiter; "" turns the route off
	// Fault is a test-only hook (env PRODUCTSVC_FAULT only): crash-after-redeem
	// exits with status 3 right after arbiter granted, before the insert;
	// fail-insert makes every local insert fail, forcing compensation.
	Fault string
}

// errHelp is returned when -h was asked for: usage printed, exit 0.
var errHelp = envflag.ErrHelp

// parseConfig reads flags over environment variables over defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := envflag.New("productsvc", getenv, stderr)
	fs.String(&c.Addr, "addr", "PRODUCTSVC_ADDR", "127.0.0.1:8081", "listen address")
	fs.String(&c.Product, "product", "PRODUCTSVC_PRODUCT", "", "the arbiter product this service issues, e.g. credit_card (required)")
	fs.String(&c.ID, "id", "PRODUCTSVC_ID", "", "this service's client id at arbiter: the approval tokens' audience, e.g. card-service (required)")
	fs.String(&c.DB, "db", "PRODUCTSVC_DB", "", "SQLite database file; default <id>.db")
	fs.String(&c.ArbiterURL, "arbiter-url", "PRODUCTSVC_ARBITER_URL", "http://127.0.0.1:8080", "arbiter's base URL")
	fs.String(&c.ArbiterKey, "arbiter-key", "PRODUCTSVC_ARBITER_KEY", "", "this service's API key at arbiter, with roles checker and redeemer (required; prefer the env var)")
	fs.String(&c.Issuer, "issuer", "PRODUCTSVC_ISSUER", "arbiter", "the approval tokens' required iss")
	fs.Duration(&c.RequestTimeout, "request-timeout", "PRODUCTSVC_REQUEST_TIMEOUT", "10s", "upper bound of one API request")
	fs.Duration(&c.ReconcileInterval, "reconcile-interval", "PRODUCTSVC_RECONCILE_INTERVAL", "30s", "how often pending work is settled with arbiter")
	fs.Duration(&c.ReconcileMinAge, "reconcile-min-age", "PRODUCTSVC_RECONCILE_MIN_AGE", "1m", "pending work younger than this may still be in flight and is left alone (must exceed -request-timeout)")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "PRODUCTSVC_SHUTDOWN_TIMEOUT", "10s", "how long in-flight requests may finish after SIGTERM")
	fs.String(&c.LogLevel, "log-level", "PRODUCTSVC_LOG_LEVEL", "info", "debug, info, warn or error")
	fs.String(&c.TLSCert, "tls-cert", "PRODUCTSVC_TLS_CERT", "", "PEM certificate chain of the listener; set (with -tls-key) to serve HTTPS only, TLS 1.2 or later; reloaded on SIGHUP and when the files change")
	fs.String(&c.TLSKey, "tls-key", "PRODUCTSVC_TLS_KEY", "", "PEM private key of -tls-cert")
	fs.String(&c.TLSClientCA, "tls-client-ca", "PRODUCTSVC_TLS_CLIENT_CA", "", "PEM CA file; set: every connection must present a client certificate it verifies (cert_names in -clients then identify the caller)")
	fs.Duration(&c.TLSReloadInterval, "tls-reload-interval", "PRODUCTSVC_TLS_RELOAD_INTERVAL", "5s", "how often the certificate files are checked for a change")
	fs.String(&c.ArbiterCA, "arbiter-ca", "PRODUCTSVC_ARBITER_CA", "", "PEM CA file verifying arbiter's certificate (an https:// -arbiter-url); empty: the system's roots")
	fs.String(&c.ArbiterCert, "arbiter-cert", "PRODUCTSVC_ARBITER_CERT", "", "PEM client certificate presented to arbiter; it may identify this service instead of -arbiter-key")
	fs.String(&c.ArbiterCertKey, "arbiter-cert-key", "PRODUCTSVC_ARBITER_CERT_KEY", "", "PEM private key of -arbiter-cert")
	fs.String(&c.FeedKey, "feed-key", "PRODUCTSVC_FEED_KEY", "", "bearer key the holdings feed (GET /v1/holdings) requires, as arbiter's reconciler sends it; empty: open (prefer the env var)")
	fs.String(&c.ClientsFile, "clients", "PRODUCTSVC_CLIENTS", "", "clients file, in arbiter's ARBITER_CLIENTS format, of who may apply and close: each request needs a listed key (Authorization: Bearer) or certificate (cert_names, with -tls-client-ca); empty: the API is open to anyone who reaches it")
	fs.String(&c.WebhookSecret, "webhook-secret", "PRODUCTSVC_WEBHOOK_SECRET", "", "whsec_ secret of this service's webhook in arbiter's clients file: POST /webhooks/arbiter verifies arbiter's announcements with it and drops an application whose hold expired or was cancelled at once; empty: the route answers 404 (prefer the env var)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Fault = getenv("PRODUCTSVC_FAULT")
	return c, c.check()
}

func (c *config) check() error {
	var missing []string
	if c.Product == "" {
		missing = append(missing, "-product (PRODUCTSVC_PRODUCT)")
	}
	if c.ID == "" {
		missing = append(missing, "-id (PRODUCTSVC_ID)")
	}
	if c.ArbiterKey == "" && c.ArbiterCert == "" {
		missing = append(missing, "-arbiter-key (PRODUCTSVC_ARBITER_KEY) or a client certificate (-arbiter-cert)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if err := c.checkTLS(); err != nil {
		return err
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
