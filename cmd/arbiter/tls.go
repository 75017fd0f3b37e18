package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/internal/certs"
	"github.com/arbiter-bank/arbiter/web"
)

// checkTLS refuses half-made TLS settings, in every mode: a setting that
// cannot take effect must not pass for one that does.
func (c config) checkTLS() error {
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("ARBITER_TLS_CERT and ARBITER_TLS_KEY go together: set both or neither")
	case c.TLSClientCA != "" && c.TLSCert == "":
		return errors.New("ARBITER_TLS_CLIENT_CA needs a TLS listener: set ARBITER_TLS_CERT and ARBITER_TLS_KEY")
	case c.TLSClientAuth != "" && c.TLSClientAuth != "optional" && c.TLSClientAuth != "require": // "": the default, optional
		return fmt.Errorf("ARBITER_TLS_CLIENT_AUTH=%q: use optional or require", c.TLSClientAuth)
	case c.TLSClientAuth == "require" && c.TLSClientCA == "":
		return errors.New("ARBITER_TLS_CLIENT_AUTH=require needs ARBITER_TLS_CLIENT_CA")
	case (c.RedisCertFile == "") != (c.RedisKeyFile == ""):
		return errors.New("ARBITER_REDIS_CERT and ARBITER_REDIS_KEY go together: set both or neither")
	}
	return nil
}

// serverTLS loads the listener's TLS configuration; nil when the listener
// is plain HTTP. The reloader serves the certificate and is what Watch
// reloads.
func serverTLS(cfg config) (*tls.Config, *certs.Reloader, error) {
	if cfg.TLSCert == "" {
		return nil, nil, nil
	}
	r, err := certs.NewReloader(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("ARBITER_TLS_CERT: %w", err)
	}
	auth := certs.NoClientCert
	var tc *tls.Config
	if cfg.TLSClientCA == "" {
		tc, err = certs.ServerConfig(r, nil, auth)
	} else {
		pool, perr := certs.LoadPool(cfg.TLSClientCA)
		if perr != nil {
			return nil, nil, fmt.Errorf("ARBITER_TLS_CLIENT_CA: %w", perr)
		}
		auth = certs.VerifyIfGiven
		if cfg.TLSClientAuth == "require" {
			auth = certs.Require
		}
		tc, err = certs.ServerConfig(r, pool, auth)
	}
	if err != nil {
		return nil, nil, err
	}
	tc.NextProtos = []string{"h2", "http/1.1"}
	return tc, r, nil
}

// logTLS says at start what the listener serves, so an operator can see
// which certificate is live and when it expires.
func logTLS(log *slog.Logger, cfg config, r *certs.Reloader) {
	leaf := r.Current().Leaf
	log.Info("tls listener", "cert", cfg.TLSCert, "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "client_ca", cfg.TLSClientCA != "", "client_auth", cfg.TLSClientAuth)
}

// checkCertClients refuses a clients file naming certificates that no
// listener would verify.
func checkCertClients(cfg config, cs *web.Clients) error {
	if cfg.TLSClientCA != "" {
		return nil
	}
	for _, c := range cs.Clients {
		if len(c.CertNames) > 0 {
			return fmt.Errorf("client %q has cert_names, but no ARBITER_TLS_CLIENT_CA verifies client certificates", c.ID)
		}
	}
	return nil
}
