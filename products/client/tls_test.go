package client_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/arbiter-bank/arbiter/internal/testca"
	"github.com/arbiter-bank/arbiter/products/client"
)

// TestTLSConfig: a client certificate in Config.TLSConfig identifies the
// service to an arbiter that requires one, with no API key sent.
func TestTLSConfig(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Client(t, "card", testca.Names{URIs: []string{"spiffe://bank.test/card-service"}})
	type seen struct {
		uri, auth string
	}
	requests := make(chan seen, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- seen{uri: r.TLS.PeerCertificates[0].URIs[0].String(), auth: r.Header.Get("Authorization")}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"customer_id":"C-1","products":[]}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "arbiter", testca.Names{}).TLS},
		ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	t.Run("a client certificate and no key", func(t *testing.T) {
		c, err := client.New(client.Config{BaseURL: srv.URL, ClientID: "card-service",
			TLSConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{leaf.TLS}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Customer(context.Background(), "C-1"); err != nil {
			t.Fatalf("Customer: %v", err)
		}
		got := <-requests
		if want := "spiffe://bank.test/card-service"; got.uri != want {
			t.Errorf("peer certificate URI = %q, want %q", got.uri, want)
		}
		if got.auth != "" {
			t.Errorf("Authorization = %q, want none", got.auth)
		}
	})
	t.Run("neither a key nor a client certificate", func(t *testing.T) {
		if _, err := client.New(client.Config{BaseURL: srv.URL, TLSConfig: &tls.Config{RootCAs: ca.Pool()}}); err == nil {
			t.Fatal("New accepted a Config with no way to identify the client")
		}
	})
}
