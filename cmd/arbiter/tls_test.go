package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/testca"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// tlsFiles is a listener certificate in files of its own, which tests
// replace, and the CA clients trust.
type tlsFiles struct {
	ca                *testca.CA
	certFile, keyFile string
}

func newTLSFiles(tb testing.TB, ca *testca.CA) tlsFiles {
	tb.Helper()
	dir := tb.TempDir()
	f := tlsFiles{ca: ca, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	ca.Server(tb, "arbiter-1", testca.Names{}).CopyTo(tb, f.certFile, f.keyFile)
	return f
}

// httpsClient trusts ca and presents leaf when it is not nil.
func httpsClient(ca *testca.CA, leaf *testca.Leaf) *http.Client {
	tc := &tls.Config{RootCAs: ca.Pool()}
	if leaf != nil {
		tc.Certificates = []tls.Certificate{leaf.TLS}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// keepAlive is one TLS connection kept open across HTTP/1.1 requests.
type keepAlive struct {
	conn *tls.Conn
	rd   *bufio.Reader
}

func dialTLS(tb testing.TB, base string, ca *testca.CA) *keepAlive {
	tb.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		tb.Fatalf("TLS handshake with %s: %v", base, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &keepAlive{conn: conn, rd: bufio.NewReader(conn)}
}

func (k *keepAlive) serial() string {
	return k.conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// healthz sends GET /healthz on the open connection and wants 200.
func (k *keepAlive) healthz(tb testing.TB) {
	tb.Helper()
	if _, err := io.WriteString(k.conn, "GET /healthz HTTP/1.1\r\nHost: arbiter\r\n\r\n"); err != nil {
		tb.Fatalf("request on the open connection: %v", err)
	}
	resp, err := http.ReadResponse(k.rd, nil)
	if err != nil {
		tb.Fatalf("answer on the open connection: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		tb.Fatalf("GET /healthz on the open connection = %d (close %v), want 200, kept open", resp.StatusCode, resp.Close)
	}
}

// pollUntil polls cond every 20ms until it holds, failing after 10s.
func pollUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTLSListenerReload(t *testing.T) {
	ca := testca.New(t)
	f := newTLSFiles(t, ca)
	second, third := ca.Server(t, "arbiter-2", testca.Names{}), ca.Server(t, "arbiter-3", testca.Names{})
	// The poll is an hour away: only SIGHUP reloads.
	s := startRunWith(t, map[string]string{"ARBITER_TLS_CERT": f.certFile, "ARBITER_TLS_KEY": f.keyFile,
		"ARBITER_TLS_RELOAD_INTERVAL": "1h"}, httpsClient(ca, nil), true)
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("listening on %s, want https://", s.base)
	}
	open := dialTLS(t, s.base, ca)
	open.healthz(t)
	first := open.serial()
	if got, want := certExpiryGauge(t, httpsClient(ca, nil), s.base, "listener"), notAfter(t, f.certFile); got != want {
		t.Errorf("listener certificate expiry gauge = %d, want its NotAfter %d", got, want)
	}
	if want := `"msg":"tls listener","cert":"` + f.certFile + `","serial":"` + open.conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16) + `"`; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("start-up log lacks %s:\n%s", want, s.stderr)
	}
	newSerial := func() string { return dialTLS(t, s.base, ca).serial() }

	t.Run("SIGHUP: new handshakes get the new certificate, the open connection keeps working", func(t *testing.T) {
		second.CopyTo(t, f.certFile, f.keyFile)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		want := second.Cert.SerialNumber.String()
		pollUntil(t, "a handshake with serial "+want, func() bool { return newSerial() == want })
		open.healthz(t)
		if got := open.serial(); got != first {
			t.Errorf("open connection's serial = %s, want the first %s", got, first)
		}
	})
	t.Run("a bad pair keeps the current certificate and logs an error", func(t *testing.T) {
		if err := os.WriteFile(f.keyFile, []byte("not a key"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "reload failed in the logs", func() bool { return strings.Contains(s.stderr.String(), "tls certificate reload failed") })
		if got, want := newSerial(), second.Cert.SerialNumber.String(); got != want {
			t.Errorf("serial after a bad pair = %s, want %s", got, want)
		}
		open.healthz(t)
	})
	t.Run("a change of the files is picked up without a signal", func(t *testing.T) {
		f := newTLSFiles(t, ca)
		s := startRunWith(t, map[string]string{"ARBITER_TLS_CERT": f.certFile, "ARBITER_TLS_KEY": f.keyFile,
			"ARBITER_TLS_RELOAD_INTERVAL": "50ms"}, httpsClient(ca, nil), true)
		open := dialTLS(t, s.base, ca)
		third.CopyTo(t, f.certFile, f.keyFile)
		want := third.Cert.SerialNumber.String()
		pollUntil(t, "a handshake with serial "+want, func() bool { return dialTLS(t, s.base, ca).serial() == want })
		open.healthz(t)
	})
	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(s.base, "https://"), &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})
}

func TestTLSClientCertificates(t *testing.T) {
	ca := testca.New(t)
	f := newTLSFiles(t, ca)
	clients := writeFile(t, "clients.yaml", `clients:
  - { id: branch-portal, key: tls-test-checker-key-1, roles: [checker] }
  - { id: card-service, cert_names: ["spiffe://bank.test/card-service"], roles: [checker, redeemer] }
`)
	card := ca.Client(t, "card", testca.Names{URIs: []string{"spiffe://bank.test/card-service"}})
	env := func(auth string) map[string]string {
		return map[string]string{"ARBITER_TLS_CERT": f.certFile, "ARBITER_TLS_KEY": f.keyFile,
			"ARBITER_TLS_CLIENT_CA": ca.CertFile, "ARBITER_TLS_CLIENT_AUTH": auth, "ARBITER_CLIENTS": clients}
	}
	check := func(tb testing.TB, hc *http.Client, base, key string) int {
		tb.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/checks", strings.NewReader(`{"customer_id":"C-`+key+`","product":"credit_card"}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("optional: a certificate or a key identifies the client", func(t *testing.T) {
		s := startRunWith(t, env("optional"), httpsClient(ca, nil), true)
		if got, want := check(t, httpsClient(ca, &card), s.base, ""), http.StatusCreated; got != want {
			t.Errorf("check by certificate = %d, want %d", got, want)
		}
		if got, want := check(t, httpsClient(ca, nil), s.base, "tls-test-checker-key-1"), http.StatusCreated; got != want {
			t.Errorf("check by key = %d, want %d", got, want)
		}
		if got, want := check(t, httpsClient(ca, nil), s.base, ""), http.StatusUnauthorized; got != want {
			t.Errorf("check with neither = %d, want %d", got, want)
		}
	})
	t.Run("require: a connection without a certificate is refused", func(t *testing.T) {
		s := startRunWith(t, env("require"), httpsClient(ca, &card), true)
		if got := check(t, httpsClient(ca, nil), s.base, "tls-test-checker-key-1"); got != 0 {
			t.Errorf("check without a certificate = %d, want a refused handshake", got)
		}
		if got, want := check(t, httpsClient(ca, &card), s.base, ""), http.StatusCreated; got != want {
			t.Errorf("check by certificate = %d, want %d", got, want)
		}
	})
}

func TestTLSConfigurationErrors(t *testing.T) {
	ca := testca.New(t)
	f := newTLSFiles(t, ca)
	certClients := writeFile(t, "clients.yaml", "clients:\n  - { id: card-service, cert_names: [card.internal], roles: [checker] }\n")
	garbage := writeFile(t, "garbage.pem", "not a certificate")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a certificate without its key", map[string]string{"ARBITER_TLS_CERT": f.certFile}, "ARBITER_TLS_CERT and ARBITER_TLS_KEY go together"},
		{"a client CA without a TLS listener", map[string]string{"ARBITER_TLS_CLIENT_CA": ca.CertFile}, "needs a TLS listener"},
		{"an unknown client auth", map[string]string{"ARBITER_TLS_CLIENT_AUTH": "maybe"}, "use optional or require"},
		{"require without a client CA", map[string]string{"ARBITER_TLS_CERT": f.certFile, "ARBITER_TLS_KEY": f.keyFile, "ARBITER_TLS_CLIENT_AUTH": "require"}, "needs ARBITER_TLS_CLIENT_CA"},
		{"an unreadable certificate", map[string]string{"ARBITER_TLS_CERT": garbage, "ARBITER_TLS_KEY": f.keyFile}, "ARBITER_TLS_CERT"},
		{"a client CA file without certificates", map[string]string{"ARBITER_TLS_CERT": f.certFile, "ARBITER_TLS_KEY": f.keyFile, "ARBITER_TLS_CLIENT_CA": garbage}, "holds no PEM certificate"},
		{"cert_names without a client CA", map[string]string{"ARBITER_CLIENTS": certClients}, "no ARBITER_TLS_CLIENT_CA verifies"},
		{"a Redis client certificate without its key", map[string]string{"ARBITER_REDIS_CERT": f.certFile}, "ARBITER_REDIS_CERT and ARBITER_REDIS_KEY go together"},
		{"a Redis CA with a redis:// URL", map[string]string{"ARBITER_REDIS_CA_FILE": ca.CertFile}, "need a rediss:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["ARBITER_ADDR"] = "127.0.0.1:0"
			err := run(context.Background(), []string{"arbiter"}, func(k string) string { return tc.env[k] }, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestRunRedisTLS(t *testing.T) {
	rs := redistest.MustStartTLSRedis(t, true)
	clients := writeFile(t, "clients.yaml", `clients:
  - { id: branch-portal, key: tls-test-checker-key-1, roles: [checker] }
  - { id: card-service, key: tls-test-card-key-0001, roles: [checker, redeemer] }
`)
	signing := signingKeyFile(t)
	env := func(extra ...string) map[string]string {
		e := map[string]string{"ARBITER_REDIS_URL": rs.URL(), "ARBITER_CLIENTS": clients, "ARBITER_SIGNING_KEY": signing}
		for i := 0; i+1 < len(extra); i += 2 {
			e[extra[i]] = extra[i+1]
		}
		return e
	}
	t.Run("rediss:// with the CA and a client certificate", func(t *testing.T) {
		s := startRun(t, env("ARBITER_REDIS_CA_FILE", rs.TLS.CAFile, "ARBITER_REDIS_CERT", rs.TLS.CertFile, "ARBITER_REDIS_KEY", rs.TLS.KeyFile))
		flow(t, s.base, "tls-test-checker-key-1", "tls-test-card-key-0001")
		if got, want := certExpiryGauge(t, http.DefaultClient, s.base, "redis_client"), notAfter(t, rs.TLS.CertFile); got != want {
			t.Errorf("redis client certificate expiry gauge = %d, want its NotAfter %d", got, want)
		}
	})
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"without the CA", env("ARBITER_REDIS_CERT", rs.TLS.CertFile, "ARBITER_REDIS_KEY", rs.TLS.KeyFile), "certificate signed by unknown authority"},
		{"without a client certificate", env("ARBITER_REDIS_CA_FILE", rs.TLS.CAFile), "tls: certificate required"},
	} {
		t.Run(tc.name+": never ready, and the log says why", func(t *testing.T) {
			s := startRunWith(t, tc.env, http.DefaultClient, false)
			pollUntil(t, "the start-up warning", func() bool { return strings.Contains(s.stderr.String(), "redis not reachable at start") })
			if log := s.stderr.String(); !strings.Contains(log, tc.want) {
				t.Errorf("logs lack %q:\n%s", tc.want, log)
			}
			resp, err := http.Get(s.base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got, want := resp.StatusCode, http.StatusServiceUnavailable; got != want {
				t.Errorf("/readyz = %d, want %d", got, want)
			}
		})
	}
}

// TestRedisSkipVerifyRefused: go-redis reads skip_verify=true from a
// rediss:// URL and then trusts any certificate; arbiter refuses to start
// with it, whatever the topology and the other TLS settings.
func TestRedisSkipVerifyRefused(t *testing.T) {
	ca := testca.New(t)
	base := map[string]string{
		"ARBITER_ADDR":        "127.0.0.1:0",
		"ARBITER_SIGNING_KEY": signingKeyFile(t),
		"ARBITER_CLIENTS":     writeFile(t, "clients.yaml", "clients:\n  - { id: card-service, key: prod-card-key-123456, roles: [checker] }\n"),
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"single node", map[string]string{"ARBITER_REDIS_URL": "rediss://127.0.0.1:1/?skip_verify=true"}},
		{"single node with a Redis CA", map[string]string{"ARBITER_REDIS_URL": "rediss://127.0.0.1:1/?skip_verify=true", "ARBITER_REDIS_CA_FILE": ca.CertFile}},
		{"Sentinel", map[string]string{"ARBITER_REDIS_URL": "rediss://127.0.0.1:1/?skip_verify=true", "ARBITER_REDIS_SENTINEL_MASTER": "mymaster"}},
		{"Cluster", map[string]string{"ARBITER_REDIS_URL": "rediss://127.0.0.1:1?addr=127.0.0.1:2&skip_verify=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tc.env)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // not refused: it would run
			defer cancel()
			err := run(ctx, []string{"arbiter"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "skip_verify=true") {
				t.Fatalf("run = %v, want an error naming skip_verify=true", err)
			}
		})
	}
}

// certExpiryGauge scrapes base's /metrics for
// arbiter_tls_certificate_expiry_timestamp_seconds{certificate=name}.
func certExpiryGauge(tb testing.TB, hc *http.Client, base, name string) int64 {
	tb.Helper()
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	prefix := `arbiter_tls_certificate_expiry_timestamp_seconds{certificate="` + name + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("%s%s: %v", prefix, v, err)
			}
			return int64(f)
		}
	}
	tb.Fatalf("/metrics has no %s", strings.TrimSpace(prefix))
	return 0
}

// notAfter is the NotAfter (Unix seconds) of the first certificate in file.
func notAfter(tb testing.TB, file string) int64 {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		tb.Fatalf("%s holds no PEM block", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return c.NotAfter.Unix()
}
