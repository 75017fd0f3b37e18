// Package testca makes X.509 certificates for tests: a certificate
// authority made in the test (crypto/x509, ECDSA P-256), and server and
// client certificates it signs, written as PEM files into the test's
// temporary directory. Nothing here is fit for production use.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority made for one test.
type CA struct {
	// CertFile is the CA certificate as a PEM file: what a peer trusts.
	CertFile string
	// Cert is the CA certificate.
	Cert *x509.Certificate

	key  *ecdsa.PrivateKey
	dir  string
	next atomic.Int64 // serial of the next certificate issued
}

// Leaf is a certificate issued by a CA, with its key, as PEM files.
type Leaf struct {
	CertFile, KeyFile string
	// Cert is the parsed certificate (Serial, SANs).
	Cert *x509.Certificate
	// TLS is the same pair, ready for tls.Config.Certificates.
	TLS tls.Certificate
}

// Names are the subject alternative names of a certificate. A server
// certificate with no names gets 127.0.0.1, ::1 and localhost.
type Names struct {
	DNS  []string
	IPs  []net.IP
	URIs []string // e.g. spiffe://bank.test/card-service
}

// New makes a CA whose files live in a new temporary directory of tb.
func New(tb testing.TB) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "arbiter test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("testca: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testca: parse CA: %v", err)
	}
	ca := &CA{Cert: cert, key: key, dir: tb.TempDir()}
	ca.next.Store(1)
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(tb, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a server certificate (ExtKeyUsageServerAuth) for names,
// written as name.pem and name-key.pem in the CA's directory.
func (ca *CA) Server(tb testing.TB, name string, names Names) Leaf {
	tb.Helper()
	if len(names.DNS)+len(names.IPs)+len(names.URIs) == 0 {
		names = Names{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	}
	return ca.issue(tb, name, names, x509.ExtKeyUsageServerAuth)
}

// Client issues a client certificate (ExtKeyUsageClientAuth) carrying
// names, written as name.pem and name-key.pem in the CA's directory.
func (ca *CA) Client(tb testing.TB, name string, names Names) Leaf {
	tb.Helper()
	return ca.issue(tb, name, names, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issue(tb testing.TB, name string, names Names, usage x509.ExtKeyUsage) Leaf {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.next.Add(1)),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     names.DNS,
		IPAddresses:  names.IPs,
	}
	for _, s := range names.URIs {
		u, err := url.Parse(s)
		if err != nil {
			tb.Fatalf("testca: URI SAN %q: %v", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("testca: issue %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("testca: marshal key of %s: %v", name, err)
	}
	l := Leaf{CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+"-key.pem")}
	writePEM(tb, l.CertFile, "CERTIFICATE", der)
	writePEM(tb, l.KeyFile, "PRIVATE KEY", keyDER)
	if l.Cert, err = x509.ParseCertificate(der); err != nil {
		tb.Fatalf("testca: parse %s: %v", name, err)
	}
	if l.TLS, err = tls.LoadX509KeyPair(l.CertFile, l.KeyFile); err != nil {
		tb.Fatalf("testca: load %s: %v", name, err)
	}
	return l
}

// SPKIHash is the base64 SHA-256 of the certificate's public key, the form
// Chromium's --ignore-certificate-errors-spki-list takes.
func (l Leaf) SPKIHash() string {
	sum := sha256.Sum256(l.Cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// CopyTo writes the leaf's certificate and key over the files certFile and
// keyFile (each replaced by a rename, as a deployment tool would).
func (l Leaf) CopyTo(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	for src, dst := range map[string]string{l.CertFile: certFile, l.KeyFile: keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatalf("testca: %v", err)
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			tb.Fatalf("testca: %v", err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			tb.Fatalf("testca: %v", err)
		}
	}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testca: key: %v", err)
	}
	return k
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("testca: write %s: %v", path, err)
	}
}
