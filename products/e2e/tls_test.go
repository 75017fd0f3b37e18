package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/testca"
	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// cardServiceURI names the card service in its client certificate and in
// arbiter's clients file.
const cardServiceURI = "spiffe://bank.test/card-service"

// TestMutualTLS runs every hop over TLS as separate processes: arbiter on a
// redis-server that requires client certificates (rediss://), the card
// service calling arbiter with a client certificate and no API key, and the
// card service's own listener requiring client certificates.
func TestMutualTLS(t *testing.T) {
	rds := redistest.MustStartTLSRedis(t, true)
	ca := testca.New(t)
	arbiterPair := ca.Server(t, "arbiter", testca.Names{})
	servicePair := ca.Server(t, "card-service-listener", testca.Names{})
	cardCert := ca.Client(t, "card-service", testca.Names{URIs: []string{cardServiceURI}})
	frontend := ca.Client(t, "frontend", testca.Names{DNS: []string{"frontend.internal"}})
	https := func(leaf *testca.Leaf) *http.Client {
		tc := &tls.Config{RootCAs: ca.Pool()}
		if leaf != nil {
			tc.Certificates = []tls.Certificate{leaf.TLS}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}

	dir := t.TempDir()
	clients := filepath.Join(dir, "clients.yaml")
	yaml := "clients:\n  - {id: branch-portal, key: " + branchKey + ", roles: [checker]}\n" +
		"  - {id: card-service, cert_names: [\"" + cardServiceURI + "\"], roles: [checker, redeemer]}\n"
	if err := os.WriteFile(clients, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	arb := proctest.Start(t, arbiterBin, []string{"-addr", "127.0.0.1:0", "-log-level", "warn",
		"-redis-url", rds.URL(), "-redis-ca", rds.TLS.CAFile, "-redis-cert", rds.TLS.CertFile, "-redis-key", rds.TLS.KeyFile,
		"-clients", clients, "-signing-key", key,
		"-tls-cert", arbiterPair.CertFile, "-tls-key", arbiterPair.KeyFile, "-tls-client-ca", ca.CertFile,
		"-tls-reload-interval", "1h"}, nil) // only SIGHUP reloads
	proctest.WaitReadyWith(t, https(nil), arb.URL)
	svc := proctest.Start(t, productsvcBin, []string{"-addr", "127.0.0.1:0", "-log-level", "warn",
		"-product", "credit_card", "-id", "card-service", "-db", filepath.Join(dir, "card.db"),
		"-arbiter-url", arb.URL, "-arbiter-ca", ca.CertFile, "-arbiter-cert", cardCert.CertFile, "-arbiter-cert-key", cardCert.KeyFile,
		"-tls-cert", servicePair.CertFile, "-tls-key", servicePair.KeyFile, "-tls-client-ca", ca.CertFile},
		[]string{"PRODUCTSVC_ARBITER_KEY="})
	proctest.WaitReadyWith(t, https(&frontend), svc.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("an online application: the card service checks and redeems by certificate", func(t *testing.T) {
		body, _ := json.Marshal(map[string]string{"customer_id": "C-tls-1"})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, svc.URL+"/v1/applications/online", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := https(&frontend).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&got)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("online application = %d %v, want 201; arbiter stderr:\n%s\ncard service stderr:\n%s", resp.StatusCode, got, arb.Stderr(), svc.Stderr())
		}
		ledger, err := client.New(client.Config{BaseURL: arb.URL, APIKey: branchKey, TLSConfig: &tls.Config{RootCAs: ca.Pool()}})
		if err != nil {
			t.Fatal(err)
		}
		cu, err := ledger.Customer(ctx, "C-tls-1")
		if err != nil {
			t.Fatal(err)
		}
		g, ok := cu.Grant("credit_card")
		if !ok || g.CheckID != got["check_id"] || g.RedeemedBy != "card-service" {
			t.Fatalf("arbiter's ledger = %+v, want the card of check %v redeemed by card-service", cu.Products, got["check_id"])
		}
	})
	t.Run("SIGHUP rotates arbiter's certificate; the card service goes on", func(t *testing.T) {
		rotated := ca.Server(t, "arbiter-rotated", testca.Names{})
		rotated.CopyTo(t, arbiterPair.CertFile, arbiterPair.KeyFile)
		if err := arb.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		want := rotated.Cert.SerialNumber.String()
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn, err := tls.Dial("tcp", strings.TrimPrefix(arb.URL, "https://"), &tls.Config{RootCAs: ca.Pool()})
			if err != nil {
				t.Fatal(err)
			}
			got := conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
			conn.Close()
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("arbiter still serves serial %s 10s after SIGHUP, want %s; stderr:\n%s", got, want, arb.Stderr())
			}
			time.Sleep(20 * time.Millisecond)
		}
		body, _ := json.Marshal(map[string]string{"customer_id": "C-tls-2"})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, svc.URL+"/v1/applications/online", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := https(&frontend).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusCreated; got != want {
			t.Fatalf("online application after the rotation = %d, want %d", got, want)
		}
	})
	t.Run("arbiter refuses a caller with neither key nor certificate", func(t *testing.T) {
		resp, err := https(nil).Get(arb.URL + "/v1/customers/C-tls-1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("GET without credentials = %d, want %d", got, want)
		}
	})
	t.Run("the card service refuses a connection without a client certificate", func(t *testing.T) {
		resp, err := https(nil).Get(svc.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET /healthz without a client certificate = %d, want a refused handshake", resp.StatusCode)
		}
	})
}
