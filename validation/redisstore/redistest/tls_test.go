package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMustStartTLSRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pool := func(tb testing.TB, s *Server) *x509.CertPool {
		tb.Helper()
		pem, err := os.ReadFile(s.TLS.CAFile)
		if err != nil {
			tb.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(pem) {
			tb.Fatal("CA file holds no certificate")
		}
		return p
	}
	pingWith := func(s *Server, tc *tls.Config) error {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, TLSConfig: tc, MaxRetries: -1, DialTimeout: 2 * time.Second})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	for _, tc := range []struct {
		name        string
		authClients bool
	}{{"without client certificates", false}, {"with client certificates", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := MustStartTLSRedis(t, tc.authClients)
			if got, want := s.URL(), "rediss://"+s.Addr+"/0"; got != want {
				t.Errorf("URL = %q, want %q", got, want)
			}
			if err := s.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET through Client: %v", err)
			}
			if err := ping(s.Addr, nil, time.Second); err == nil {
				t.Error("plain TCP was answered: the server must listen on TLS only")
			}
			if err := pingWith(s, &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
				t.Error("a client that does not trust the test CA was answered")
			}
			err := pingWith(s, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool(t, s)})
			if got, want := err == nil, !tc.authClients; got != want {
				t.Errorf("PING with the CA and no client certificate: err = %v, want success %v", err, want)
			}
			s.Restart(t)
			if err := s.Client(t).Ping(ctx).Err(); err != nil {
				t.Fatalf("PING after Restart: %v", err)
			}
		})
	}
}
