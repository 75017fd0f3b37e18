// Package certs is the TLS material of the binaries: a certificate and key
// read from PEM files and reloaded, without dropping connections, on SIGHUP
// or when the files change; CA pools; and tls.Configs that refuse anything
// older than TLS 1.2 and otherwise keep Go's defaults.
package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MinVersion is the oldest TLS version any listener or client accepts.
const MinVersion = tls.VersionTLS12

// DefaultPollInterval is how often Watch compares the files with what was
// loaded, when its caller gives no interval.
const DefaultPollInterval = 5 * time.Second

// ExpiryWarning is how long before its expiry the certificate in use is
// reported by Watch, as a warning, at start and then once a day: a renewal
// that silently stopped should be noticed before clients see the failure.
const ExpiryWarning = 14 * 24 * time.Hour

// Reloader holds a certificate and its key, loaded from two PEM files.
// Handshakes read the current pair through GetCertificate or
// GetClientCertificate, so a reload affects new handshakes only: open
// connections keep the certificate they were made with.
type Reloader struct {
	certFile, keyFile string

	cur atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // serialises reloads
	tried   [sha256.Size]byte
	current [sha256.Size]byte
}

// NewReloader loads the pair certFile, keyFile; an unreadable file, a key
// that does not match the certificate, or an expired certificate is an error.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Current returns the pair new handshakes get.
func (r *Reloader) Current() *tls.Certificate { return r.cur.Load() }

// Leaf is the current certificate's parsed leaf.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().Leaf }

// GetCertificate is a tls.Config.GetCertificate serving the current pair.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate presenting the
// current pair.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// Reload reads both files again and, if they hold a valid pair that differs
// from the current one, makes it current (changed is true). On any error
// the current pair stays.
func (r *Reloader) Reload() (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, keyPEM, sum, err := r.read()
	if err != nil {
		return false, err
	}
	return r.load(certPEM, keyPEM, sum)
}

// reloadIfNew is Reload for the poll: files identical to the last ones tried
// are not parsed again, so a bad pair is reported once, not every tick.
func (r *Reloader) reloadIfNew() (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, keyPEM, sum, err := r.read()
	if err != nil {
		return false, err
	}
	if sum == r.tried {
		return false, nil
	}
	return r.load(certPEM, keyPEM, sum)
}

func (r *Reloader) read() (certPEM, keyPEM []byte, sum [sha256.Size]byte, err error) {
	if certPEM, err = os.ReadFile(r.certFile); err != nil {
		return nil, nil, sum, fmt.Errorf("tls certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(r.keyFile); err != nil {
		return nil, nil, sum, fmt.Errorf("tls key: %w", err)
	}
	sum = sha256.Sum256(bytes.Join([][]byte{certPEM, keyPEM}, []byte{0}))
	return certPEM, keyPEM, sum, nil
}

func (r *Reloader) load(certPEM, keyPEM []byte, sum [sha256.Size]byte) (bool, error) {
	r.tried = sum
	if r.cur.Load() != nil && sum == r.current {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("tls certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	if now := time.Now(); now.After(pair.Leaf.NotAfter) {
		return false, fmt.Errorf("tls certificate %s expired at %s", r.certFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	r.cur.Store(&pair)
	r.current = sum
	return true, nil
}

// Watch reloads the pair every interval when its files changed, and at
// once on every value received from hup, until ctx ends. A reload that
// fails keeps the current pair and is logged as an error; one that succeeds
// is logged with the new certificate's serial number.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, hup <-chan os.Signal, log *slog.Logger) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var warned time.Time
	for {
		if leaf := r.cur.Load().Leaf; time.Until(leaf.NotAfter) < ExpiryWarning && time.Since(warned) >= 24*time.Hour {
			log.Warn("tls certificate expires soon", "cert", r.certFile, "serial", leaf.SerialNumber.Text(16),
				"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
			warned = time.Now()
		}
		var changed bool
		var err error
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err = r.reloadIfNew()
		case <-hup:
			changed, err = r.Reload()
		}
		switch {
		case err != nil:
			log.Error("tls certificate reload failed; keeping the current one", "cert", r.certFile, "err", err)
		case changed:
			leaf := r.cur.Load().Leaf
			log.Info("tls certificate reloaded", "cert", r.certFile, "serial", leaf.SerialNumber.Text(16),
				"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
}

// ReloadSignals subscribes to SIGHUP, the reload signal, before it returns
// (so a SIGHUP sent after it can no longer end the process); stop
// unsubscribes. Give hup to Watch; each Watch needs its own.
func ReloadSignals() (hup <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// LoadPool reads a PEM file of CA certificates; a file with none is an error.
func LoadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ClientAuth says what a listener asks of its clients' certificates.
type ClientAuth int

const (
	// NoClientCert asks for none.
	NoClientCert ClientAuth = iota
	// VerifyIfGiven verifies a certificate a client presents and lets
	// clients without one through (to be identified some other way).
	VerifyIfGiven
	// Require refuses the handshake of a client without a valid certificate.
	Require
)

// ServerConfig is a listener's tls.Config: the reloader's pair, TLS 1.2 at
// least, and, unless auth is NoClientCert, client certificates verified
// against clientCAs.
func ServerConfig(r *Reloader, clientCAs *x509.CertPool, auth ClientAuth) (*tls.Config, error) {
	c := &tls.Config{MinVersion: MinVersion, GetCertificate: r.GetCertificate}
	switch auth {
	case NoClientCert:
		return c, nil
	case VerifyIfGiven:
		c.ClientAuth = tls.VerifyClientCertIfGiven
	case Require:
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if clientCAs == nil {
		return nil, errors.New("client certificates need a client CA")
	}
	c.ClientCAs = clientCAs
	return c, nil
}

// ClientConfig is a client's tls.Config: TLS 1.2 at least, servers verified
// against rootCAs (nil: the system's roots), and the reloader's pair as the
// client certificate when r is not nil.
func ClientConfig(rootCAs *x509.CertPool, r *Reloader) *tls.Config {
	c := &tls.Config{MinVersion: MinVersion, RootCAs: rootCAs}
	if r != nil {
		c.GetClientCertificate = r.GetClientCertificate
	}
	return c
}
