package redistest

import (
	"crypto/tls"
	"testing"

	"github.com/arbiter-bank/arbiter/internal/testca"
)

// TLSFiles are the PEM files of a TLS redis-server's test CA, and of a
// client certificate the server accepts.
type TLSFiles struct {
	// CAFile is the CA that signed the server's certificate and that the
	// server verifies client certificates against.
	CAFile string
	// CertFile and KeyFile are a client certificate of that CA, which a
	// server with AuthClients requires of every connection.
	CertFile, KeyFile string
	// AuthClients tells whether the server requires client certificates
	// (tls-auth-clients yes).
	AuthClients bool

	serverCert, serverKey string
}

func (f *TLSFiles) serverArgs() []string {
	auth := "no"
	if f.AuthClients {
		auth = "yes"
	}
	return []string{"--tls-cert-file", f.serverCert, "--tls-key-file", f.serverKey,
		"--tls-ca-cert-file", f.CAFile, "--tls-auth-clients", auth}
}

// MustStartTLSRedis is MustStartRedis for a server that listens on TLS
// only (--port 0 --tls-port): its certificate, for 127.0.0.1 and localhost,
// is signed by a CA made in the test, and with authClients every client
// must present a certificate of that CA. s.TLS names the files, s.URL() is
// rediss://, and s.Client and the server's own probes speak TLS with the
// client certificate.
func MustStartTLSRedis(tb testing.TB, authClients bool, extraArgs ...string) *Server {
	tb.Helper()
	bin, err := findRedisServer()
	if err != nil {
		MustStartRedis(tb) // skips or fails, as for any missing redis-server
		return nil
	}
	ca := testca.New(tb)
	server := ca.Server(tb, "redis", testca.Names{})
	client := ca.Client(tb, "redis-client", testca.Names{DNS: []string{"arbiter.test"}})
	s := &Server{Dir: tb.TempDir(), bin: bin, TLS: &TLSFiles{CAFile: ca.CertFile, CertFile: client.CertFile,
		KeyFile: client.KeyFile, AuthClients: authClients, serverCert: server.CertFile, serverKey: server.KeyFile}}
	s.clientTLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}}
	s.startOnFreePort(tb, extraArgs)
	return s
}
