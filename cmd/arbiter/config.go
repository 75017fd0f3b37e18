package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
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

	// Redis topology and durability (see redis.go).
	RedisSentinelMaster string
	RedisWaitReplicas   int
	RedisWaitTimeout    time.Duration
}

type setting struct {
	flag, env, def, usage string
	dur                   *time.Duration
	str                   *string
	num                   *int  // a count, zero or more
	on                    *bool // a switch: true or false
}

func (c *config) settings() []setting {
	return []setting{
		{flag: "addr", env: "ARBITER_ADDR", def: "127.0.0.1:8080", usage: "listen address", str: &c.Addr},
		{flag: "redis-url", env: "ARBITER_REDIS_URL", usage: "redis:// or rediss:// URL; empty runs an embedded in-memory Redis (demo mode)", str: &c.RedisURL},
		{flag: "policy", env: "ARBITER_POLICY", usage: "policy YAML file; empty uses the built-in policy", str: &c.PolicyFile},
		{flag: "clients", env: "ARBITER_CLIENTS", usage: "clients YAML file (API keys, roles, branch agents); required with a Redis URL", str: &c.ClientsFile},
		{flag: "signing-key", env: "ARBITER_SIGNING_KEY", usage: "Ed25519 private key (PKCS#8 PEM file) signing approval tokens; required with a Redis URL", str: &c.SigningKeyFile},
		{flag: "verify-keys", env: "ARBITER_VERIFY_KEYS", usage: "PEM file of older public keys still accepted and published in the JWKS (key rotation)", str: &c.VerifyKeysFile},
		{flag: "issuer", env: "ARBITER_ISSUER", def: "arbiter", usage: "the approval tokens' iss", str: &c.Issuer},
		{flag: "redis-timeout", env: "ARBITER_REDIS_TIMEOUT", def: "500ms", usage: "dial, read and write timeout of each Redis call", dur: &c.RedisTimeout},
		{flag: "redis-sentinel-master", env: "ARBITER_REDIS_SENTINEL_MASTER", usage: "Sentinel master name; then the Redis URL lists the Sentinels", str: &c.RedisSentinelMaster},
		{flag: "redis-wait-replicas", env: "ARBITER_REDIS_WAIT_REPLICAS", def: "0", usage: "replicas that must acknowledge a redemption (Redis WAIT) before it is answered 201; fewer gives 503 not_durable", num: &c.RedisWaitReplicas},
		{flag: "redis-wait-timeout", env: "ARBITER_REDIS_WAIT_TIMEOUT", def: "100ms", usage: "how long a redemption waits for those replicas", dur: &c.RedisWaitTimeout},
		{flag: "request-timeout", env: "ARBITER_REQUEST_TIMEOUT", def: "3s", usage: "upper bound of one API request", dur: &c.RequestTimeout},
		{flag: "shutdown-timeout", env: "ARBITER_SHUTDOWN_TIMEOUT", def: "10s", usage: "how long in-flight requests may finish after SIGTERM", dur: &c.ShutdownTimeout},
		{flag: "log-level", env: "ARBITER_LOG_LEVEL", def: "info", usage: "debug, info, warn or error", str: &c.LogLevel},
		{flag: "secure-cookies", env: "ARBITER_SECURE_COOKIES", def: "false", usage: "mark the branch UI session cookie Secure (set it behind a TLS-terminating proxy)", on: &c.SecureCookies},
		{flag: "session-idle", env: "ARBITER_SESSION_IDLE", def: "15m", usage: "branch UI sessions end after this long without a request", dur: &c.SessionIdle},
	}
}

// errHelp is returned when -h was asked for: usage printed, exit 0.
var errHelp = errors.New("help requested")

// parseConfig reads flags over environment variables over defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("arbiter", flag.ContinueOnError)
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
		if s.on != nil {
			b, err := strconv.ParseBool(def)
			if err != nil {
				return c, fmt.Errorf("%s=%q: want true or false", s.env, def)
			}
			fs.BoolVar(s.on, s.flag, b, usage)
			continue
		}
		if s.num != nil {
			n, err := strconv.Atoi(def)
			if err != nil || n < 0 {
				return c, fmt.Errorf("%s=%q: want a whole number, 0 or more", s.env, def)
			}
			fs.IntVar(s.num, s.flag, n, usage)
			continue
		}
		d, err := time.ParseDuration(def)
		if err != nil {
			return c, fmt.Errorf("%s=%q: %w", s.env, def, err)
		}
		fs.DurationVar(s.dur, s.flag, d, usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: arbiter [flags]\n\nEvery flag can also be set by its environment variable; a flag wins.")
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
	for _, s := range settings {
		if s.dur != nil && *s.dur <= 0 {
			return c, fmt.Errorf("-%s must be positive", s.flag)
		}
		if s.num != nil && *s.num < 0 {
			return c, fmt.Errorf("-%s must be 0 or more", s.flag)
		}
	}
	return c, nil
}

// production reports whether the service runs on a real Redis; then it
// fails closed: no demo keys, no ephemeral signing key.
func (c config) production() bool { return c.RedisURL != "" }

func (c config) check() error {
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
