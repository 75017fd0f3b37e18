package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/internal/envflag"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// config is every setting of the service. Each has a flag and an
// environment variable; a flag given on the command line wins.
type config struct {
	Addr            string
	RedisURL        string
	PolicyFile      string
	ClientsFile     string
	SigningKeyFile  string
	VerifyKeysFile  string
	Issuer          string
	RedisTimeout    time.Duration
	RequestTimeout  time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
	SecureCookies   bool          // branch UI cookie Secure behind a TLS-terminating proxy
	SessionIdle     time.Duration // branch UI idle sign-out
	PprofAddr       string        // Go profiler listener; empty: off
	OTPFailures     int           // wrong codes per customer per OTPWindow, across holds
	OTPWindow       time.Duration
	MaxConnections  int // open client connections; 0: from the open-file limit (conns.go)

	// The durable record (see archive.go): a PostgreSQL archive, the
	// outboxes' bound per slot, the exporter's pause between rounds.
	ArchiveURL     string
	OutboxMax      int
	ExportInterval time.Duration

	// The recent part of each customer's audit that Redis keeps
	// (redisstore.Options.AuditCap and AuditRetention; meta lives a day or
	// two longer): less than the defaults only with an archive, which keeps
	// the rest.
	AuditCap       int
	AuditRetention time.Duration

	// CompactGrants, "on" or "off": whether redemptions write the ledger's
	// short grant (g1) and arbiter migrate converts whole ones to it
	// (redisstore.Options.CompactGrants; operations.md, upgrading).
	CompactGrants string

	// Redis topology and durability (see redis.go).
	RedisSentinelMaster string
	RedisWaitReplicas   int
	RedisWaitTimeout    time.Duration
	RedisAutoPipeline   string // "on", "off" or "auto": batch concurrent requests' script calls (autoPipeline)

	// TLS of the listener and of the Redis connections (see tls.go, redistls.go).
	TLSCert           string        // listener certificate chain, PEM; set: serve HTTPS
	TLSKey            string        // its private key, PEM
	TLSClientCA       string        // CA verifying client certificates (mutual TLS)
	TLSClientAuth     string        // "optional" or "require"
	TLSReloadInterval time.Duration // how often certificate files are compared with what was loaded
	RedisCAFile       string        // CA verifying a rediss:// server
	RedisCertFile     string        // client certificate for Redis (tls-auth-clients)
	RedisKeyFile      string
}

// flags binds every setting of c to its flag and environment variable.
func flags(c *config, getenv func(string) string, stderr io.Writer) *envflag.Set {
	fs := envflag.New("arbiter", getenv, stderr)
	fs.Commands(commandUsage...)
	fs.String(&c.Addr, "addr", "ARBITER_ADDR", "127.0.0.1:8080", "listen address")
	fs.String(&c.RedisURL, "redis-url", "ARBITER_REDIS_URL", "", "redis:// or rediss:// URL (a cluster: several seeds, comma-separated or as addr= parameters); empty runs an embedded in-memory Redis (demo mode)")
	fs.String(&c.PolicyFile, "policy", "ARBITER_POLICY", "", "policy YAML file; empty uses the built-in policy")
	fs.String(&c.ClientsFile, "clients", "ARBITER_CLIENTS", "", "clients YAML file (API keys, roles, branch agents); required with a Redis URL")
	fs.String(&c.SigningKeyFile, "signing-key", "ARBITER_SIGNING_KEY", "", "Ed25519 private key (PKCS#8 PEM file) signing approval tokens; required with a Redis URL")
	fs.String(&c.VerifyKeysFile, "verify-keys", "ARBITER_VERIFY_KEYS", "", "PEM file of older public keys still accepted and published in the JWKS (key rotation)")
	fs.String(&c.Issuer, "issuer", "ARBITER_ISSUER", "arbiter", "the approval tokens' iss")
	fs.Duration(&c.RedisTimeout, "redis-timeout", "ARBITER_REDIS_TIMEOUT", "500ms", "dial, read and write timeout of each Redis call")
	fs.String(&c.RedisSentinelMaster, "redis-sentinel-master", "ARBITER_REDIS_SENTINEL_MASTER", "", "Sentinel master name; then the Redis URL lists the Sentinels")
	fs.Int(&c.RedisWaitReplicas, "redis-wait-replicas", "ARBITER_REDIS_WAIT_REPLICAS", "0", "replicas that must acknowledge a redemption (Redis WAIT) before it is answered 201; fewer gives 503 not_durable")
	fs.Duration(&c.RedisWaitTimeout, "redis-wait-timeout", "ARBITER_REDIS_WAIT_TIMEOUT", "100ms", "how long a redemption waits for those replicas")
	fs.String(&c.RedisAutoPipeline, "redis-autopipeline", "ARBITER_REDIS_AUTOPIPELINE", "auto", "on: concurrent requests' script calls share one write and one read to Redis (each still one command, never resent); off: each call goes alone; auto: on, unless tracing is on (a batch's span belongs to no request)")
	fs.String(&c.ArchiveURL, "archive-url", "ARBITER_ARCHIVE_URL", "", "PostgreSQL URL (postgres://...) of the audit archive; set, every decision is recorded through an outbox in Redis and archived there, expiries are swept, and webhooks are sent; needs a Redis URL")
	fs.Int(&c.OutboxMax, "outbox-max", "ARBITER_OUTBOX_MAX", "1024", "records one Redis Cluster slot's outbox may hold while the archive is not taking them (16384 slots); at it, that slot's decisions answer 503 outbox_full")
	fs.String(&c.CompactGrants, "compact-grants", "ARBITER_COMPACT_GRANTS", "off", "on: a redemption keeps the short grant (g1) for ever and the whole check for the retention only, and arbiter migrate converts whole grants; turn it on once no instance of the previous release serves, which cannot read g1 (docs/operations.md)")
	fs.Int(&c.AuditCap, "audit-cap", "ARBITER_AUDIT_CAP", strconv.Itoa(redisstore.DefaultAuditCap), "state changes of each customer's audit that Redis keeps, the newest (GET /v1/customers/{id}/audit serves them; the branch UI shows 20): 20 to 200; below 200 only with ARBITER_ARCHIVE_URL, which keeps every one")
	fs.Duration(&c.AuditRetention, "audit-retention", "ARBITER_AUDIT_RETENTION", "720h", "how long Redis keeps a customer's audit after their newest state change, and their meta (a day or two longer) after their newest hold; fences and record numbers then start again from the clock: at least 24h and the OTP failure window; below 720h only with ARBITER_ARCHIVE_URL, which keeps every record")
	fs.Duration(&c.ExportInterval, "export-interval", "ARBITER_EXPORT_INTERVAL", "1s", "pause between the exporter's rounds (archiving records, sweeping expired holds); an untouched expiry is announced within about two of them")
	fs.Duration(&c.RequestTimeout, "request-timeout", "ARBITER_REQUEST_TIMEOUT", "3s", "upper bound of one API request")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "ARBITER_SHUTDOWN_TIMEOUT", "10s", "how long in-flight requests may finish after SIGTERM")
	fs.String(&c.LogLevel, "log-level", "ARBITER_LOG_LEVEL", "info", "debug, info, warn or error")
	fs.Bool(&c.SecureCookies, "secure-cookies", "ARBITER_SECURE_COOKIES", "false", "mark the branch UI session cookie Secure (set it behind a TLS-terminating proxy)")
	fs.Duration(&c.SessionIdle, "session-idle", "ARBITER_SESSION_IDLE", "15m", "branch UI sessions end after this long without a request")
	fs.Int(&c.OTPFailures, "otp-max-failures", "ARBITER_OTP_MAX_FAILURES", "10", "wrong one-time codes per customer per -otp-failure-window, across holds, before OTP redemptions for that customer are refused (429 otp_rate_limited)")
	fs.Duration(&c.OTPWindow, "otp-failure-window", "ARBITER_OTP_FAILURE_WINDOW", "1h", "the window of -otp-max-failures")
	fs.Int(&c.MaxConnections, "max-connections", "ARBITER_MAX_CONNECTIONS", "0", "most client connections kept open; at the cap idle and silent ones are closed to make room; 0: three quarters of the open-file limit, at most 4096")
	fs.String(&c.PprofAddr, "pprof-addr", "ARBITER_PPROF_ADDR", "", "serve Go's profiler (/debug/pprof/) on this separate address, e.g. 127.0.0.1:6060; empty: off")
	fs.String(&c.TLSCert, "tls-cert", "ARBITER_TLS_CERT", "", "PEM certificate chain of the listener; set (with -tls-key) to serve HTTPS only, TLS 1.2 or later; reloaded on SIGHUP and when the files change")
	fs.String(&c.TLSKey, "tls-key", "ARBITER_TLS_KEY", "", "PEM private key of -tls-cert")
	fs.String(&c.TLSClientCA, "tls-client-ca", "ARBITER_TLS_CLIENT_CA", "", "PEM CA file verifying client certificates (mutual TLS); clients are then identified by the cert_names of the clients file")
	fs.String(&c.TLSClientAuth, "tls-client-auth", "ARBITER_TLS_CLIENT_AUTH", "optional", "with -tls-client-ca: optional (verify a certificate when one is presented) or require (refuse connections without one)")
	fs.Duration(&c.TLSReloadInterval, "tls-reload-interval", "ARBITER_TLS_RELOAD_INTERVAL", "5s", "how often the certificate files are checked for a change")
	fs.String(&c.RedisCAFile, "redis-ca", "ARBITER_REDIS_CA_FILE", "", "PEM CA file verifying a rediss:// Redis; empty: the system's roots")
	fs.String(&c.RedisCertFile, "redis-cert", "ARBITER_REDIS_CERT", "", "PEM client certificate presented to a rediss:// Redis (tls-auth-clients yes)")
	fs.String(&c.RedisKeyFile, "redis-key", "ARBITER_REDIS_KEY", "", "PEM private key of -redis-cert")
	return fs
}

// errHelp is returned when -h was asked for: usage printed, exit 0.
var errHelp = envflag.ErrHelp

// parseConfig reads flags over environment variables over defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	err := flags(&c, getenv, stderr).Parse(args)
	return c, err
}

// autoPipeline reports whether the store autopipelines its script calls
// (redisstore.Options.AutoPipeline). auto is on unless tracing is: go-redis
// runs a batch outside every request's context, so a batched call's Redis
// span would no longer be a child of its request's span.
func (c config) autoPipeline(tracing bool) bool {
	return c.RedisAutoPipeline == "on" || c.RedisAutoPipeline == "auto" && !tracing
}

// production reports whether the service runs on a real Redis; then it
// fails closed: no demo keys, no ephemeral signing key.
func (c config) production() bool { return c.RedisURL != "" }

func (c config) check() error {
	if c.OTPFailures < 1 || c.OTPWindow < time.Second {
		return fmt.Errorf("ARBITER_OTP_MAX_FAILURES must be at least 1 and ARBITER_OTP_FAILURE_WINDOW at least 1s")
	}
	if c.RedisAutoPipeline != "on" && c.RedisAutoPipeline != "off" && c.RedisAutoPipeline != "auto" {
		return fmt.Errorf("ARBITER_REDIS_AUTOPIPELINE must be on, off or auto, not %q", c.RedisAutoPipeline)
	}
	if c.MaxConnections < 0 {
		return fmt.Errorf("ARBITER_MAX_CONNECTIONS must be 0 (from the open-file limit) or positive")
	}
	if err := c.checkTLS(); err != nil {
		return err
	}
	if c.ArchiveURL != "" && !c.production() {
		return fmt.Errorf("ARBITER_ARCHIVE_URL needs ARBITER_REDIS_URL: the embedded demo store keeps no outbox")
	}
	if c.CompactGrants != "on" && c.CompactGrants != "off" {
		return fmt.Errorf("ARBITER_COMPACT_GRANTS must be on or off")
	}
	if err := c.checkAudit(); err != nil {
		return err
	}
	if c.OutboxMax < 1 || c.ExportInterval < 10*time.Millisecond {
		return fmt.Errorf("ARBITER_OUTBOX_MAX must be at least 1 and ARBITER_EXPORT_INTERVAL at least 10ms")
	}
	if !c.production() {
		return nil
	}
	var missing []string
	if c.ClientsFile == "" {
		missing = append(missing, "ARBITER_CLIENTS (-clients)")
	}
	if c.SigningKeyFile == "" {
		missing = append(missing, "ARBITER_SIGNING_KEY (-signing-key)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("production mode (ARBITER_REDIS_URL is set) refuses to start without %s: there are no default keys or secrets outside demo mode", strings.Join(missing, " and "))
	}
	return nil
}

// checkAudit bounds the recent audit Redis keeps. Without an archive it is
// the only record of a decision, so it may not be shorter than the
// defaults. Meta lives at least as long as the audit and keeps what a live
// hold and the OTP failure window need, so a day and that window are its
// least.
func (c config) checkAudit() error {
	if c.AuditCap < 20 || c.AuditCap > redisstore.DefaultAuditCap {
		return fmt.Errorf("ARBITER_AUDIT_CAP must be from 20 (the branch UI's page) to %d (the most GET /v1/customers/{id}/audit serves)", redisstore.DefaultAuditCap)
	}
	if c.AuditRetention < 24*time.Hour || c.AuditRetention < c.OTPWindow {
		return fmt.Errorf("ARBITER_AUDIT_RETENTION must be at least 24h and ARBITER_OTP_FAILURE_WINDOW (%s): meta, which keeps the wrong codes' count, lives as long", c.OTPWindow)
	}
	shorter := c.AuditCap < redisstore.DefaultAuditCap || c.AuditRetention < redisstore.DefaultAuditRetention
	if shorter && c.ArchiveURL == "" {
		return fmt.Errorf("ARBITER_AUDIT_CAP below %d or ARBITER_AUDIT_RETENTION below %.0fh needs ARBITER_ARCHIVE_URL: without an archive, the audit in Redis is the only record of each decision",
			redisstore.DefaultAuditCap, redisstore.DefaultAuditRetention.Hours())
	}
	return nil
}
