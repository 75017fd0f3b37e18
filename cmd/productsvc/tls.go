package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/internal/certs"
)

// checkTLS refuses TLS settings that cannot take effect.
func (c *config) checkTLS() error {
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("PRODUCTSVC_TLS_CERT and PRODUCTSVC_TLS_KEY go together: set both or neither")
	case c.TLSClientCA != "" && c.TLSCert == "":
		return errors.New("PRODUCTSVC_TLS_CLIENT_CA needs a TLS listener: set PRODUCTSVC_TLS_CERT and PRODUCTSVC_TLS_KEY")
	case (c.ArbiterCert == "") != (c.ArbiterCertKey == ""):
		return errors.New("PRODUCTSVC_ARBITER_CERT and PRODUCTSVC_ARBITER_CERT_KEY go together: set both or neither")
	case (c.ArbiterCA != "" || c.ArbiterCert != "") && !strings.HasPrefix(c.ArbiterURL, "https://"):
		return fmt.Errorf("PRODUCTSVC_ARBITER_CA and PRODUCTSVC_ARBITER_CERT need an https:// arbiter URL, not %q", c.ArbiterURL)
	}
	return nil
}

// tlsMaterial is what the service's TLS settings load: the listener's
// configuration and the configuration of the calls to arbiter (each nil
// when not set), and the certificate pairs that Watch reloads.
type tlsMaterial struct {
	listener, arbiter *tls.Config
	pairs             []*certs.Reloader
}

func loadTLS(cfg config) (tlsMaterial, error) {
	var m tlsMaterial
	if cfg.TLSCert != "" {
		r, err := certs.NewReloader(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return m, fmt.Errorf("PRODUCTSVC_TLS_CERT: %w", err)
		}
		auth := certs.NoClientCert
		var pool *x509.CertPool
		if cfg.TLSClientCA != "" {
			if pool, err = certs.LoadPool(cfg.TLSClientCA); err != nil {
				return m, fmt.Errorf("PRODUCTSVC_TLS_CLIENT_CA: %w", err)
			}
			auth = certs.Require
		}
		if m.listener, err = certs.ServerConfig(r, pool, auth); err != nil {
			return m, err
		}
		m.pairs = append(m.pairs, r)
	}
	if cfg.ArbiterCA != "" || cfg.ArbiterCert != "" {
		m.arbiter = certs.ClientConfig(nil, nil)
		if cfg.ArbiterCA != "" {
			pool, err := certs.LoadPool(cfg.ArbiterCA)
			if err != nil {
				return m, fmt.Errorf("PRODUCTSVC_ARBITER_CA: %w", err)
			}
			m.arbiter.RootCAs = pool
		}
		if cfg.ArbiterCert != "" {
			r, err := certs.NewReloader(cfg.ArbiterCert, cfg.ArbiterCertKey)
			if err != nil {
				return m, fmt.Errorf("PRODUCTSVC_ARBITER_CERT: %w", err)
			}
			m.arbiter.GetClientCertificate = r.GetClientCertificate
			m.pairs = append(m.pairs, r)
		}
	}
	return m, nil
}

// watch reloads every pair on SIGHUP and when its files change, until ctx ends.
func (m tlsMaterial) watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	for _, r := range m.pairs {
		hup, stop := certs.ReloadSignals()
		go func() {
			defer stop()
			r.Watch(ctx, interval, hup, log)
		}()
	}
}
