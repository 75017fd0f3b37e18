package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/arbiter-bank/arbiter/cmd/internal/certs"
)

// redisTLS is the TLS material of the connections to Redis: the CA that
// verifies the servers (ARBITER_REDIS_CA_FILE; none: the system's roots)
// and a client certificate (ARBITER_REDIS_CERT, ARBITER_REDIS_KEY) for a
// redis-server with tls-auth-clients yes. A nil *redisTLS has none.
type redisTLS struct {
	roots  *x509.CertPool
	client *certs.Reloader
}

// loadRedisTLS reads the files the configuration names; nil when it names none.
func loadRedisTLS(cfg config) (*redisTLS, error) {
	if cfg.RedisCAFile == "" && cfg.RedisCertFile == "" {
		return nil, nil
	}
	rt := &redisTLS{}
	var err error
	if cfg.RedisCAFile != "" {
		if rt.roots, err = certs.LoadPool(cfg.RedisCAFile); err != nil {
			return nil, fmt.Errorf("ARBITER_REDIS_CA_FILE: %w", err)
		}
	}
	if cfg.RedisCertFile != "" {
		if rt.client, err = certs.NewReloader(cfg.RedisCertFile, cfg.RedisKeyFile); err != nil {
			return nil, fmt.Errorf("ARBITER_REDIS_CERT: %w", err)
		}
	}
	return rt, nil
}

// apply completes the tls.Config go-redis made from a rediss:// URL (nil
// for redis://, which may not be combined with TLS settings): TLS 1.2 at
// least, the CA, the client certificate. A URL's skip_verify=true, which
// go-redis turns into InsecureSkipVerify, is refused in every mode: any
// certificate would do, so anyone on the path could read the password
// and every customer's holdings.
func (rt *redisTLS) apply(tc *tls.Config) error {
	if tc != nil && tc.InsecureSkipVerify {
		return errors.New("skip_verify=true in the URL turns off the verification of Redis's certificate: remove it and name the servers' CA in ARBITER_REDIS_CA_FILE")
	}
	if rt == nil {
		if tc != nil {
			tc.MinVersion = max(tc.MinVersion, certs.MinVersion)
		}
		return nil
	}
	if tc == nil {
		return errors.New("ARBITER_REDIS_CA_FILE and ARBITER_REDIS_CERT need a rediss:// URL: a redis:// URL would send everything, the password included, in clear text")
	}
	tc.MinVersion = max(tc.MinVersion, certs.MinVersion)
	if rt.roots != nil {
		tc.RootCAs = rt.roots
	}
	if rt.client != nil {
		tc.GetClientCertificate = rt.client.GetClientCertificate
	}
	return nil
}

// watch reloads the Redis client certificate like the listener's (SIGHUP,
// or a change of its files), until the returned stop is called. New
// connections present the new one; open ones keep theirs.
func (rt *redisTLS) watch(cfg config, log *slog.Logger) (stop func()) {
	if rt == nil || rt.client == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup, stopHup := certs.ReloadSignals()
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt.client.Watch(ctx, cfg.TLSReloadInterval, hup, log.With("tls", "redis client"))
	}()
	return func() { cancel(); <-done; stopHup() }
}
