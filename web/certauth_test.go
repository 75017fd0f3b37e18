package web_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/internal/testca"
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/web"
)

// Certificate names and keys of the clients file of the mTLS tests.
const (
	cardURI     = "spiffe://bank.test/card-service"
	loanDNS     = "loan.internal"
	mtlsLoanKey = "test-loan-service-key-mtls"
	mtlsBranch  = "test-branch-portal-key-mtls"
)

// mtlsClientsYAML: card-service by certificate only, loan-service needs its
// certificate and its key, branch-portal a key only.
const mtlsClientsYAML = `clients:
  - { id: card-service, cert_names: ["` + cardURI + `"], roles: [checker, redeemer] }
  - { id: loan-service, key: ` + mtlsLoanKey + `, cert_names: [` + loanDNS + `], require: [cert, key], roles: [checker, redeemer] }
  - { id: branch-portal, key: ` + mtlsBranch + `, roles: [checker] }
`

func TestClientsCertNames(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"a client by certificate alone", `clients: [{id: a, cert_names: ["spiffe://b/a"], roles: [checker]}]`, ""},
		{"a key and cert names, both required", `clients: [{id: a, key: aaaaaaaaaaaaaaaa, cert_names: [a.internal], require: [key, cert], roles: [checker]}]`, ""},
		{"neither key nor cert names", `clients: [{id: a, roles: [checker]}]`, "no key and no cert_names"},
		{"a name of two clients", `clients: [{id: a, cert_names: [A.internal], roles: [checker]}, {id: b, cert_names: [a.INTERNAL], roles: [checker]}]`, "already identifies client"},
		{"an empty name", `clients: [{id: a, cert_names: [""], roles: [checker]}]`, "empty or blank"},
		{"require cert without cert names", `clients: [{id: a, key: aaaaaaaaaaaaaaaa, require: [cert], roles: [checker]}]`, "has no cert_names"},
		{"require key without a key", `clients: [{id: a, cert_names: [a.internal], require: [key], roles: [checker]}]`, "has no key"},
		{"an unknown credential", `clients: [{id: a, key: aaaaaaaaaaaaaaaa, require: [password], roles: [checker]}]`, "unknown credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clientauth.Parse([]byte(tc.yaml))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("clientauth.Parse = %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("clientauth.Parse = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

func TestIdentify(t *testing.T) {
	cs, err := clientauth.Parse([]byte(mtlsClientsYAML))
	if err != nil {
		t.Fatal(err)
	}
	ca := testca.New(t)
	cert := func(n testca.Names) *x509.Certificate { return ca.Client(t, "c", n).Cert }
	card := cert(testca.Names{URIs: []string{cardURI}, DNS: []string{"pod-17.cluster.local"}})
	loan := cert(testca.Names{DNS: []string{"LOAN.internal"}})
	stranger := cert(testca.Names{URIs: []string{"spiffe://bank.test/stranger"}})
	both := cert(testca.Names{URIs: []string{cardURI}, DNS: []string{loanDNS}})
	for _, tc := range []struct {
		name string
		key  string
		cert *x509.Certificate
		want string // client id; "" for 401
	}{
		{"nothing", "", nil, ""},
		{"a certificate alone", "", card, "card-service"},
		{"a key alone", mtlsBranch, nil, "branch-portal"},
		{"an unknown certificate alone", "", stranger, ""},
		{"an unknown certificate and a key", mtlsBranch, stranger, "branch-portal"},
		{"an unknown key and a known certificate", "not-a-key-at-all-0000", card, ""},
		{"a key and a certificate of different clients", mtlsBranch, card, ""},
		{"a certificate naming two clients", "", both, ""},
		{"required both: the key alone", mtlsLoanKey, nil, ""},
		{"required both: the certificate alone", "", loan, ""},
		{"required both: both (DNS name in another case)", mtlsLoanKey, loan, "loan-service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cs.Identify(tc.key, tc.cert)
			if tc.want == "" {
				if !errors.Is(err, validation.ErrUnauthorized) {
					t.Fatalf("Identify = %q, %v; want reason unauthorized", c.ID, err)
				}
				return
			}
			if err != nil || c.ID != tc.want {
				t.Fatalf("Identify = %q, %v; want %q", c.ID, err, tc.want)
			}
		})
	}
}

// startMTLS serves the API over TLS on a real redis-server, asking for
// (not requiring) client certificates of ca.
func startMTLS(tb testing.TB, ca *testca.CA) string {
	tb.Helper()
	rs := redistest.MustStartRedis(tb)
	key, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	clients, err := clientauth.Parse([]byte(mtlsClientsYAML))
	if err != nil {
		tb.Fatal(err)
	}
	policy := validation.DefaultPolicy()
	srv := httptest.NewUnstartedServer(web.New(web.Config{
		Service: &validation.Service{Store: redisstore.New(rs.Client(tb), redisstore.Options{}), Policy: policy},
		Tokens:  issuer, Policy: policy, Clients: clients,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{ca.Server(tb, "arbiter", testca.Names{}).TLS},
		ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake of the last subtest
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv.URL
}

func TestCertificateAuthentication(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	url := startMTLS(t, ca)
	client := func(leaf *testca.Leaf) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if leaf != nil {
			cfg.Certificates = []tls.Certificate{leaf.TLS}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	card := ca.Client(t, "card", testca.Names{URIs: []string{cardURI}})
	stranger := ca.Client(t, "stranger", testca.Names{URIs: []string{"spiffe://bank.test/stranger"}})
	loan := ca.Client(t, "loan", testca.Names{DNS: []string{loanDNS}})
	for i, tc := range []struct {
		name   string
		leaf   *testca.Leaf
		key    string
		status int
		client string
	}{
		{"card-service by its certificate, no key", &card, "", http.StatusCreated, "card-service"},
		{"a certificate of the CA naming no client", &stranger, "", http.StatusUnauthorized, ""},
		{"loan-service by key without its certificate", nil, mtlsLoanKey, http.StatusUnauthorized, ""},
		{"loan-service by certificate and key", &loan, mtlsLoanKey, http.StatusCreated, "loan-service"},
		{"branch-portal by key over TLS", nil, mtlsBranch, http.StatusCreated, "branch-portal"},
	} {
		customer := fmt.Sprintf("C-mtls-%d", i)
		t.Run(tc.name, func(t *testing.T) {
			body := `{"customer_id":"` + customer + `","product":"credit_card"}`
			req, _ := http.NewRequest(http.MethodPost, url+"/v1/checks", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := client(tc.leaf).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&got)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d %v, want %d", resp.StatusCode, got, tc.status)
			}
			if tc.status == http.StatusUnauthorized {
				if got["reason"] != string(validation.ReasonUnauthorized) {
					t.Errorf("reason = %v, want unauthorized", got["reason"])
				}
				return
			}
			if got["placed_by"] != tc.client {
				t.Errorf("placed_by = %v, want %s", got["placed_by"], tc.client)
			}
		})
	}
	t.Run("a certificate of another CA is refused in the handshake", func(t *testing.T) {
		leaf := other.Client(t, "card", testca.Names{URIs: []string{cardURI}})
		resp, err := client(&leaf).Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET /healthz with a certificate of another CA = %d, want a handshake error", resp.StatusCode)
		}
	})
}
