package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// clusterMaxRedirects is how many MOVED/ASK redirects (and TRYAGAIN or
// CLUSTERDOWN waits, with a short backoff) one command may follow on a
// cluster: enough to ride out a slot migration and a failover election
// without surfacing a 5xx, still bounded by the request's deadline.
const clusterMaxRedirects = 8

// openRedis connects to the configured Redis, or starts the embedded one,
// and returns one redis.UniversalClient whatever the topology:
//
//   - empty URL: an embedded miniredis (demo mode; embedded.go), unless
//     the build has none (-tags noembedded);
//   - ARBITER_REDIS_SENTINEL_MASTER set: the URL names the Sentinels
//     (redis://[user:pass@]sentinel1:26379?addr=sentinel2:26379), and the
//     client follows the master they elect;
//   - a URL with addr= parameters (go-redis's ParseClusterURL form,
//     redis://host1:7000?addr=host2:7001&addr=host3:7002) or a
//     comma-separated list of seeds (host1:7000,host2:7001): Redis Cluster;
//   - otherwise one node (redis:// or rediss://, redis.ParseURL).
//
// Timeouts are short and bounded so a dead Redis gives quick 503s. On one
// node and Sentinel go-redis retries are off because a script retried after
// a lost reply could run twice (clients retry with an Idempotency-Key
// instead); a cluster client must follow redirects, which never re-run a
// script (a redirected command was not executed). observeCert is given the
// client certificate arbiter presents to Redis, when it has one (metrics).
func openRedis(cfg config, log *slog.Logger, observeCert func(name string, leaf func() *x509.Certificate)) (redis.UniversalClient, func(), error) {
	raw := cfg.RedisURL
	stopEmbedded := func() {}
	if raw == "" {
		addr, stop, err := startEmbedded() // embedded.go; a noembedded build refuses
		if err != nil {
			return nil, nil, err
		}
		stopEmbedded = stop
		raw = "redis://" + addr
		log.Warn("EMBEDDED MODE: data lives in memory only and is lost at exit; set ARBITER_REDIS_URL for a real Redis")
	}
	rt, err := loadRedisTLS(cfg) // see redistls.go
	if err != nil {
		stopEmbedded()
		return nil, nil, err
	}
	rdb, err := newRedisClientTLS(cfg, raw, rt)
	if err != nil {
		stopEmbedded()
		return nil, nil, hideCredentials(err, raw) // see credentials.go
	}
	if rt != nil && rt.client != nil {
		observeCert("redis_client", rt.client.Leaf)
	}
	stopWatch := rt.watch(cfg, log)
	return rdb, func() {
		_ = rdb.Close()
		stopWatch()
		stopEmbedded()
	}, nil
}

// redisTopology names the topology of a Redis URL: "single", "sentinel" or
// "cluster".
func redisTopology(raw, sentinelMaster string) string {
	switch {
	case sentinelMaster != "":
		return "sentinel"
	case len(splitSeeds(raw)) > 1 || hasAddrParam(raw):
		return "cluster"
	}
	return "single"
}

func hasAddrParam(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has("addr")
}

func newRedisClient(cfg config, raw string) (redis.UniversalClient, error) {
	rt, err := loadRedisTLS(cfg)
	if err != nil {
		return nil, err
	}
	return newRedisClientTLS(cfg, raw, rt)
}

// newRedisClientTLS is newRedisClient with the TLS material already loaded.
func newRedisClientTLS(cfg config, raw string, rt *redisTLS) (redis.UniversalClient, error) {
	// A WAIT blocks its connection for up to WaitTimeout on top of the
	// script itself, so reads may take that much longer.
	readTimeout := cfg.RedisTimeout
	if cfg.RedisWaitReplicas > 0 {
		readTimeout += cfg.RedisWaitTimeout
	}
	switch redisTopology(raw, cfg.RedisSentinelMaster) {
	case "sentinel":
		opts, err := redis.ParseFailoverURL(raw)
		if err == nil {
			err = checkCredentials(raw, opts.SentinelUsername, opts.SentinelPassword)
		}
		if err == nil {
			err = rt.apply(opts.TLSConfig)
		}
		if err != nil {
			return nil, fmt.Errorf("ARBITER_REDIS_URL %s (Sentinels): %w", maskedURL(raw), err)
		}
		opts.MasterName = cfg.RedisSentinelMaster
		if opts.Password == "" { // one set of credentials for Sentinels and master
			opts.Username, opts.Password = opts.SentinelUsername, opts.SentinelPassword
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = cfg.RedisTimeout, readTimeout, cfg.RedisTimeout, cfg.RedisTimeout
		opts.ContextTimeoutEnabled = true
		opts.MaxRetries = -1
		return redis.NewFailoverClient(opts), nil
	case "cluster":
		opts, err := parseCluster(raw)
		if err == nil {
			err = rt.apply(opts.TLSConfig)
		}
		if err != nil {
			return nil, fmt.Errorf("ARBITER_REDIS_URL %s (Cluster): %w", maskedURL(raw), err)
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = cfg.RedisTimeout, readTimeout, cfg.RedisTimeout, cfg.RedisTimeout
		opts.ContextTimeoutEnabled = true
		opts.MaxRedirects = clusterMaxRedirects
		rdb := redis.NewClusterClient(opts)
		redisstore.FollowFailovers(rdb)
		return rdb, nil
	}
	opts, err := redis.ParseURL(raw)
	if err == nil {
		err = checkCredentials(raw, opts.Username, opts.Password)
	}
	if err == nil {
		err = rt.apply(opts.TLSConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("ARBITER_REDIS_URL %s: %w", maskedURL(raw), err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = cfg.RedisTimeout, readTimeout, cfg.RedisTimeout, cfg.RedisTimeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1
	return redis.NewClient(opts), nil
}

// parseCluster reads the ParseClusterURL form, or a comma-separated list
// of seeds (each host:port or a redis:// URL; the first one's credentials
// and options apply to all).
func parseCluster(raw string) (*redis.ClusterOptions, error) {
	seeds := splitSeeds(raw)
	first := strings.TrimSpace(seeds[0])
	if !strings.Contains(first, "://") {
		first = "redis://" + first
	}
	opts, err := redis.ParseClusterURL(first)
	if err == nil {
		err = checkCredentials(first, opts.Username, opts.Password)
	}
	if err != nil {
		return nil, err
	}
	for _, s := range seeds[1:] {
		s = strings.TrimSpace(s)
		if i := strings.Index(s, "://"); i >= 0 {
			u, err := url.Parse(s)
			if err != nil {
				return nil, err
			}
			password, _ := u.User.Password()
			if err := checkCredentials(s, u.User.Username(), password); err != nil {
				return nil, err
			}
			s = u.Host
		}
		if !strings.Contains(s, ":") {
			return nil, fmt.Errorf("seed %q: want host:port", s)
		}
		opts.Addrs = append(opts.Addrs, s)
	}
	return opts, nil
}

// storeOptions are the redisstore options that come from the configuration.
func storeOptions(cfg config) redisstore.Options {
	return redisstore.Options{WaitReplicas: cfg.RedisWaitReplicas, WaitTimeout: cfg.RedisWaitTimeout,
		AuditCap: cfg.AuditCap, AuditRetention: cfg.AuditRetention}
}
