// Package clientauth is the clients file that arbiter and the product
// services share (ARBITER_CLIENTS, PRODUCTSVC_CLIENTS): its YAML format,
// its validation, and the identification of a caller by its API key
// (kept only as SHA-256, compared in constant time) or by a verified
// client certificate. It knows nothing of HTTP frameworks, so a product
// service reads the same file as arbiter without importing arbiter's server.
package clientauth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/arbiter-bank/arbiter/validation"
)

// ReservedID is the client id of arbiter's branch UI sessions; no client of
// a file may take it.
const ReservedID = "branch-ui"

// Client is one API client of the clients file. At most one of Key and
// KeySHA256 is set; only the SHA-256 is kept in memory after loading.
// CertNames identify the client by a verified client certificate instead of,
// or as well as, a key (see CertNames and Require); a client has a key, cert
// names or both.
type Client struct {
	ID        string            `yaml:"id"`
	Key       string            `yaml:"key"`
	KeySHA256 string            `yaml:"key_sha256"`
	Roles     []validation.Role `yaml:"roles"`
	// CertNames are subject alternative names (a URI such as
	// spiffe://bank/card-service, or a DNS name) of client certificates that
	// identify this client. A URI is compared exactly, a DNS name without
	// regard to case; no name may belong to two clients.
	CertNames []string `yaml:"cert_names"`
	// Require lists the credentials a request of this client must all
	// carry: "key", "cert" or both. Empty: any one of those configured.
	Require []Credential `yaml:"require"`
	// Webhook, when set, subscribes the client to arbiter's event
	// announcements (see WebhookConfig and Clients.Webhooks).
	Webhook *WebhookConfig `yaml:"webhook"`
}

// Credential names a way a client proves who it is.
type Credential string

// Credentials a client may be required to present.
const (
	CredentialKey  Credential = "key"  // Authorization: Bearer <key>
	CredentialCert Credential = "cert" // a verified client certificate naming it
)

// Agent is a branch agent who signs in to the branch UI.
type Agent struct {
	Username       string `yaml:"username"`
	PasswordBcrypt string `yaml:"password_bcrypt"`
	Branch         string `yaml:"branch"`
}

// Clients is the parsed clients file: API clients and branch agents.
type Clients struct {
	Clients []Client `yaml:"clients"`
	Agents  []Agent  `yaml:"agents"`

	hashes [][]byte       // SHA-256 of each client's key, same order as Clients; nil: no key
	names  map[string]int // certificate name (DNS names lowercased) → index in Clients
	// webhooks are the subscriptions with their secrets, in file order;
	// the secrets are cleared from Clients.
	webhooks []Webhook
}

// MinKeyLength is the shortest API key accepted in a clients file.
const MinKeyLength = 16

// Parse decodes and validates a clients file: unknown keys, duplicate
// ids or keys, unknown roles and short keys are errors, and so are a
// webhook without an absolute http(s) URL, with not exactly one of secret
// and secret_file, with a secret that is not "whsec_" and the base64 of a
// key of at least MinWebhookKeyBytes, or with an unknown event type.
func Parse(data []byte) (*Clients, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cs Clients
	if err := dec.Decode(&cs); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("clients: empty document")
		}
		return nil, fmt.Errorf("clients: %w", err)
	}
	if err := cs.prepare(MinKeyLength); err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	return &cs, nil
}

// New returns validated Clients built in code (demo mode, tests);
// unlike Parse it accepts short keys, such as the documented demo keys.
func New(clients []Client, agents []Agent) (*Clients, error) {
	cs := &Clients{Clients: clients, Agents: agents}
	if err := cs.prepare(1); err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	return cs, nil
}

func (cs *Clients) prepare(minKey int) error {
	if len(cs.Clients) == 0 {
		return errors.New("no clients defined")
	}
	ids := map[string]bool{}
	keys := map[string]bool{}
	cs.hashes = make([][]byte, len(cs.Clients))
	cs.names = map[string]int{}
	cs.webhooks = nil
	for i := range cs.Clients {
		c := &cs.Clients[i]
		if c.ID == "" {
			return fmt.Errorf("client %d has no id", i+1)
		}
		if ids[c.ID] {
			return fmt.Errorf("client %q is listed twice", c.ID)
		}
		if c.ID == ReservedID {
			// Branch sessions act as this id; a key holder of the same id
			// would count as the placer of every agent's checks.
			return fmt.Errorf("client id %q is reserved for the branch UI's sessions", c.ID)
		}
		ids[c.ID] = true
		var sum []byte
		switch {
		case c.Key != "" && c.KeySHA256 != "":
			return fmt.Errorf("client %q: set key or key_sha256, not both", c.ID)
		case c.Key != "":
			if len(c.Key) < minKey {
				return fmt.Errorf("client %q: key is shorter than %d characters", c.ID, minKey)
			}
			h := sha256.Sum256([]byte(c.Key))
			sum = h[:]
		case c.KeySHA256 != "":
			b, err := hex.DecodeString(c.KeySHA256)
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("client %q: key_sha256 must be 64 hex characters", c.ID)
			}
			sum = b
		case len(c.CertNames) == 0:
			return fmt.Errorf("client %q has no key and no cert_names", c.ID)
		}
		if sum != nil {
			if keys[string(sum)] {
				return fmt.Errorf("client %q shares its key with another client", c.ID)
			}
			keys[string(sum)] = true
		}
		cs.hashes[i] = sum
		c.Key = "" // keep no plaintext key in memory
		if err := cs.prepareCert(i); err != nil {
			return err
		}
		if err := cs.prepareWebhook(i); err != nil {
			return err
		}
		if len(c.Roles) == 0 {
			return fmt.Errorf("client %q has no roles", c.ID)
		}
		for _, r := range c.Roles {
			if !slices.Contains([]validation.Role{validation.RoleChecker, validation.RoleRedeemer, validation.RoleAdmin}, r) {
				return fmt.Errorf("client %q: unknown role %q (checker, redeemer, admin)", c.ID, r)
			}
		}
	}
	users := map[string]bool{}
	for _, a := range cs.Agents {
		if a.Username == "" || a.PasswordBcrypt == "" {
			return errors.New("every agent needs a username and a password_bcrypt")
		}
		if users[a.Username] {
			return fmt.Errorf("agent %q is listed twice", a.Username)
		}
		users[a.Username] = true
	}
	return nil
}

// prepareCert checks the cert names and the required credentials of client i
// and indexes its names.
func (cs *Clients) prepareCert(i int) error {
	c := &cs.Clients[i]
	for _, n := range c.CertNames {
		name := certName(n)
		if name == "" || strings.ContainsAny(name, " \t\r\n") {
			return fmt.Errorf("client %q: cert_names holds an empty or blank name %q", c.ID, n)
		}
		if j, ok := cs.names[name]; ok {
			return fmt.Errorf("client %q: cert name %q already identifies client %q", c.ID, n, cs.Clients[j].ID)
		}
		cs.names[name] = i
	}
	for _, r := range c.Require {
		switch {
		case r == CredentialKey && cs.hashes[i] == nil:
			return fmt.Errorf("client %q: require lists key, but it has no key", c.ID)
		case r == CredentialCert && len(c.CertNames) == 0:
			return fmt.Errorf("client %q: require lists cert, but it has no cert_names", c.ID)
		case r != CredentialKey && r != CredentialCert:
			return fmt.Errorf("client %q: unknown credential %q in require (key, cert)", c.ID, r)
		}
	}
	return nil
}

// certName is the form names are compared in: a URI as it is, a DNS name
// in lower case.
func certName(n string) string {
	n = strings.TrimSpace(n)
	if strings.Contains(n, ":") {
		return n
	}
	return strings.ToLower(n)
}

// Credentials reads what Identify takes from a request: the bearer key
// ("" without an Authorization header) and the client certificate the TLS
// handshake verified against the listener's client CA (nil without one).
// An Authorization header that is not "Bearer <key>" is refused with
// reason unauthorized.
func Credentials(r *http.Request) (key string, cert *x509.Certificate, err error) {
	auth := r.Header.Get("Authorization")
	key, bearer := strings.CutPrefix(auth, "Bearer ")
	key = strings.TrimSpace(key)
	if auth != "" && (!bearer || key == "") {
		return "", nil, validation.Errorf(validation.ReasonUnauthorized, "send Authorization: Bearer <api key>")
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		cert = r.TLS.PeerCertificates[0]
	}
	return key, cert, nil
}

// Identify returns the client a request comes from, given its API key ("":
// none sent) and its verified client certificate (nil: none). The key and
// the certificate must not name different clients, and the client must
// present every credential its Require lists. A certificate that names no
// client is ignored when a key identifies the request, and refused when it
// is the only credential. Every error has reason unauthorized.
func (cs *Clients) Identify(key string, cert *x509.Certificate) (Client, error) {
	byKey, byCert := -1, -1
	if key != "" {
		if byKey = cs.keyIndex(key); byKey < 0 {
			return Client{}, validation.Errorf(validation.ReasonUnauthorized, "unknown API key")
		}
	}
	if cert != nil {
		var err error
		if byCert, err = cs.byCertificate(cert); err != nil && byKey < 0 {
			return Client{}, err
		}
	}
	found := max(byKey, byCert)
	switch {
	case found < 0:
		return Client{}, validation.Errorf(validation.ReasonUnauthorized, "send Authorization: Bearer <api key>, or a client certificate")
	case byKey >= 0 && byCert >= 0 && byKey != byCert:
		return Client{}, validation.Errorf(validation.ReasonUnauthorized, "the API key and the client certificate identify different clients")
	}
	c := cs.Clients[found]
	for _, r := range c.Require {
		switch {
		case r == CredentialKey && byKey < 0:
			return Client{}, validation.Errorf(validation.ReasonUnauthorized, "client %s must also send its API key", c.ID)
		case r == CredentialCert && byCert < 0:
			return Client{}, validation.Errorf(validation.ReasonUnauthorized, "client %s must also present its client certificate", c.ID)
		}
	}
	return c, nil
}

// byCertificate is the index of the client a certificate's URI and DNS
// names identify.
func (cs *Clients) byCertificate(cert *x509.Certificate) (int, error) {
	var names []string
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	names = append(names, cert.DNSNames...)
	found := -1
	for _, n := range names {
		i, ok := cs.names[certName(n)]
		if !ok {
			continue
		}
		if found >= 0 && found != i {
			return -1, validation.Errorf(validation.ReasonUnauthorized, "the client certificate names two clients, %s and %s", cs.Clients[found].ID, cs.Clients[i].ID)
		}
		found = i
	}
	if found < 0 {
		return -1, validation.Errorf(validation.ReasonUnauthorized, "the client certificate (names %s) identifies no client", strings.Join(names, ", "))
	}
	return found, nil
}

// keyIndex is the index of the client whose key is key: -1 when no client has key.
func (cs *Clients) keyIndex(key string) int {
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i, h := range cs.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			found = i
		}
	}
	return found
}

// Authenticate returns the client whose key is key. Every client's hash is
// compared, in constant time, whatever matches, so the time taken says
// nothing about which keys exist.
func (cs *Clients) Authenticate(key string) (Client, bool) {
	found := cs.keyIndex(key)
	if found < 0 {
		return Client{}, false
	}
	return cs.Clients[found], true
}

// HasCertNames reports whether any client is identified by certificate,
// and the first such client's id, so that a service can refuse to start
// without a client CA to verify them.
func (cs *Clients) HasCertNames() (string, bool) {
	for _, c := range cs.Clients {
		if len(c.CertNames) > 0 {
			return c.ID, true
		}
	}
	return "", false
}
