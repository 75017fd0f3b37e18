package certs_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/internal/certs"
	"github.com/arbiter-bank/arbiter/internal/testca"
)

// served is a TLS listener answering HTTP/1.1 keep-alive requests.
type served struct {
	addr string
	ca   *testca.CA
}

func serve(tb testing.TB, cfg *tls.Config, ca *testca.CA) served {
	tb.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return served{addr: ln.Addr().String(), ca: ca}
}

// conn is one client connection kept open across requests.
type conn struct {
	tc *tls.Conn
	rd *bufio.Reader
}

func (s served) dial(tb testing.TB, mod func(*tls.Config)) (*conn, error) {
	tb.Helper()
	cfg := &tls.Config{RootCAs: s.ca.Pool(), ServerName: "localhost"}
	if mod != nil {
		mod(cfg)
	}
	tc, err := tls.Dial("tcp", s.addr, cfg)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { tc.Close() })
	return &conn{tc: tc, rd: bufio.NewReader(tc)}, nil
}

func (c *conn) serial() string {
	return c.tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// get sends one request on the open connection and checks the answer.
func (c *conn) get(tb testing.TB) {
	tb.Helper()
	if _, err := io.WriteString(c.tc, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		tb.Fatalf("write on the open connection: %v", err)
	}
	resp, err := http.ReadResponse(c.rd, nil)
	if err != nil {
		tb.Fatalf("read on the open connection: %v", err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "ok" {
		tb.Fatalf("answer on the open connection = %d %q", resp.StatusCode, body)
	}
}

// pairFiles copies leaf into a cert and key file of their own.
func pairFiles(tb testing.TB, leaf testca.Leaf) (certFile, keyFile string) {
	tb.Helper()
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	leaf.CopyTo(tb, certFile, keyFile)
	return certFile, keyFile
}

func mustDial(tb testing.TB, s served) *conn {
	tb.Helper()
	c, err := s.dial(tb, nil)
	if err != nil {
		tb.Fatalf("handshake: %v", err)
	}
	return c
}

func TestReloader(t *testing.T) {
	ca := testca.New(t)
	first, second := ca.Server(t, "first", testca.Names{}), ca.Server(t, "second", testca.Names{})

	t.Run("a new pair goes to new handshakes; an open connection keeps working", func(t *testing.T) {
		certFile, keyFile := pairFiles(t, first)
		r, err := certs.NewReloader(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := certs.ServerConfig(r, nil, certs.NoClientCert)
		if err != nil {
			t.Fatal(err)
		}
		s := serve(t, cfg, ca)
		open := mustDial(t, s)
		open.get(t)
		second.CopyTo(t, certFile, keyFile)
		changed, err := r.Reload()
		if err != nil || !changed {
			t.Fatalf("Reload = %v, %v; want true, nil", changed, err)
		}
		if got, want := mustDial(t, s).serial(), second.Cert.SerialNumber.String(); got != want {
			t.Errorf("new handshake serial = %s, want %s", got, want)
		}
		open.get(t)
		if got, want := open.serial(), first.Cert.SerialNumber.String(); got != want {
			t.Errorf("open connection serial = %s, want %s", got, want)
		}
	})
	t.Run("unchanged files are no change", func(t *testing.T) {
		r, err := certs.NewReloader(pairFiles(t, first))
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := r.Reload(); changed || err != nil {
			t.Fatalf("Reload = %v, %v; want false, nil", changed, err)
		}
	})
	for _, tc := range []struct {
		name  string
		spoil func(tb testing.TB, certFile, keyFile string)
	}{
		{"a key of another certificate", func(tb testing.TB, certFile, keyFile string) {
			b, _ := os.ReadFile(second.KeyFile)
			os.WriteFile(keyFile, b, 0o600)
		}},
		{"a truncated certificate", func(tb testing.TB, certFile, keyFile string) {
			os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nMII"), 0o600)
		}},
		{"a missing key file", func(tb testing.TB, certFile, keyFile string) { os.Remove(keyFile) }},
	} {
		t.Run("a bad pair keeps the current one: "+tc.name, func(t *testing.T) {
			certFile, keyFile := pairFiles(t, first)
			r, err := certs.NewReloader(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, certFile, keyFile)
			if changed, err := r.Reload(); changed || err == nil {
				t.Fatalf("Reload = %v, %v; want false and an error", changed, err)
			}
			if got, want := r.Current().Leaf.SerialNumber, first.Cert.SerialNumber; got.Cmp(want) != 0 {
				t.Errorf("serial = %s, want the first one %s", got, want)
			}
			if _, err := certs.NewReloader(certFile, keyFile); err == nil {
				t.Error("NewReloader accepted the bad pair")
			}
		})
	}
}

// logLines is a logger whose lines arrive on a channel.
func logLines(tb testing.TB) (*slog.Logger, <-chan string) {
	tb.Helper()
	pr, pw := io.Pipe()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	tb.Cleanup(func() { pw.Close() })
	return slog.New(slog.NewTextHandler(pw, nil)), lines
}

func waitLine(tb testing.TB, lines <-chan string, want string) string {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			tb.Fatalf("no log line with %q within 10s", want)
		}
	}
}

func TestWatch(t *testing.T) {
	ca := testca.New(t)
	first, second := ca.Server(t, "first", testca.Names{}), ca.Server(t, "second", testca.Names{})
	for _, tc := range []struct {
		name     string
		interval time.Duration
		signal   bool
	}{
		{name: "SIGHUP reloads", interval: time.Hour, signal: true},
		{name: "a change of the files is picked up by the poll", interval: 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certFile, keyFile := pairFiles(t, first)
			r, err := certs.NewReloader(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			log, lines := logLines(t)
			hup := make(chan os.Signal, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.Watch(ctx, tc.interval, hup, log)
			second.CopyTo(t, certFile, keyFile)
			if tc.signal {
				hup <- os.Interrupt
			}
			line := waitLine(t, lines, "tls certificate reloaded")
			if want := "serial=" + second.Cert.SerialNumber.Text(16); !strings.Contains(line, want) {
				t.Errorf("log line %q lacks %s", line, want)
			}
			if got, want := r.Current().Leaf.SerialNumber, second.Cert.SerialNumber; got.Cmp(want) != 0 {
				t.Errorf("serial = %s, want %s", got, want)
			}
		})
	}
	t.Run("a certificate within ExpiryWarning of its end is reported", func(t *testing.T) {
		r, err := certs.NewReloader(pairFiles(t, first)) // testca certificates live a day
		if err != nil {
			t.Fatal(err)
		}
		log, lines := logLines(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.Watch(ctx, time.Hour, nil, log)
		line := waitLine(t, lines, "tls certificate expires soon")
		if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "serial="+first.Cert.SerialNumber.Text(16)) {
			t.Errorf("log line %q: want a warning naming serial %s", line, first.Cert.SerialNumber.Text(16))
		}
	})
	t.Run("a bad new pair is logged as an error and the current one kept", func(t *testing.T) {
		certFile, keyFile := pairFiles(t, first)
		r, err := certs.NewReloader(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		log, lines := logLines(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.Watch(ctx, 20*time.Millisecond, nil, log)
		b, _ := os.ReadFile(second.CertFile) // second's certificate, first's key
		os.WriteFile(certFile, b, 0o600)
		line := waitLine(t, lines, "reload failed")
		if !strings.Contains(line, "level=ERROR") {
			t.Errorf("log line %q is not an error", line)
		}
		if got, want := r.Current().Leaf.SerialNumber, first.Cert.SerialNumber; got.Cmp(want) != 0 {
			t.Errorf("serial = %s, want the first one %s", got, want)
		}
	})
}

func TestServerConfig(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	r, err := certs.NewReloader(pairFiles(t, ca.Server(t, "server", testca.Names{})))
	if err != nil {
		t.Fatal(err)
	}
	good := ca.Client(t, "good", testca.Names{URIs: []string{"spiffe://bank.test/card-service"}})
	stranger := other.Client(t, "stranger", testca.Names{DNS: []string{"card.internal"}})
	withCert := func(l testca.Leaf) func(*tls.Config) {
		return func(c *tls.Config) { c.Certificates = []tls.Certificate{l.TLS} }
	}
	for _, tc := range []struct {
		name   string
		auth   certs.ClientAuth
		client func(*tls.Config)
		ok     bool
	}{
		{"TLS 1.1 is refused", certs.NoClientCert, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS11 }, false},
		{"TLS 1.2 is accepted", certs.NoClientCert, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, true},
		{"verify-if-given: no certificate", certs.VerifyIfGiven, nil, true},
		{"verify-if-given: a certificate of the client CA", certs.VerifyIfGiven, withCert(good), true},
		{"verify-if-given: a certificate of another CA", certs.VerifyIfGiven, withCert(stranger), false},
		{"require: no certificate", certs.Require, nil, false},
		{"require: a certificate of the client CA", certs.Require, withCert(good), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pool = ca.Pool()
			if tc.auth == certs.NoClientCert {
				pool = nil
			}
			cfg, err := certs.ServerConfig(r, pool, tc.auth)
			if err != nil {
				t.Fatal(err)
			}
			s := serve(t, cfg, ca)
			c, err := s.dial(t, tc.client)
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				_, err = io.WriteString(c.tc, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
				if err == nil {
					_, err = http.ReadResponse(c.rd, nil)
				}
			}
			if got := err == nil; got != tc.ok {
				t.Fatalf("connection ok = %v (%v), want %v", got, err, tc.ok)
			}
		})
	}
	t.Run("client certificates without a CA are a configuration error", func(t *testing.T) {
		if _, err := certs.ServerConfig(r, nil, certs.VerifyIfGiven); err == nil {
			t.Fatal("ServerConfig accepted VerifyIfGiven without a CA")
		}
	})
}
