package web

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"gopkg.in/yaml.v3"

	"github.com/arbiter-bank/arbiter/validation"
)

// Client is one API client of the clients file. Exactly one of Key and
// KeySHA256 is set; only the SHA-256 is kept in memory after loading.
type Client struct {
	ID        string            `yaml:"id"`
	Key       string            `yaml:"key"`
	KeySHA256 string            `yaml:"key_sha256"`
	Roles     []validation.Role `yaml:"roles"`
}

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

	hashes [][]byte // SHA-256 of each client's key, same order as Clients
}

// MinKeyLength is the shortest API key accepted in a clients file.
const MinKeyLength = 16

// ParseClients decodes and validates a clients file: unknown keys, duplicate
// ids or keys, unknown roles and short keys are errors.
func ParseClients(data []byte) (*Clients, error) {
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

// NewClients returns validated Clients built in code (demo mode, tests);
// unlike ParseClients it accepts short keys, such as the documented demo keys.
func NewClients(clients []Client, agents []Agent) (*Clients, error) {
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
	for i := range cs.Clients {
		c := &cs.Clients[i]
		if c.ID == "" {
			return fmt.Errorf("client %d has no id", i+1)
		}
		if ids[c.ID] {
			return fmt.Errorf("client %q is listed twice", c.ID)
		}
		if c.ID == BranchClientID {
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
		default:
			return fmt.Errorf("client %q has no key", c.ID)
		}
		if keys[string(sum)] {
			return fmt.Errorf("client %q shares its key with another client", c.ID)
		}
		keys[string(sum)] = true
		cs.hashes[i] = sum
		c.Key = "" // keep no plaintext key in memory
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

// Authenticate returns the client whose key is key. Every client's hash is
// compared, in constant time, whatever matches, so the time taken says
// nothing about which keys exist.
func (cs *Clients) Authenticate(key string) (Client, bool) {
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i, h := range cs.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Client{}, false
	}
	return cs.Clients[found], true
}

const actorKey = "arbiter.actor"

// authenticate resolves the bearer key into the request's actor: 401 for a
// missing or unknown key.
func authenticate(cs *Clients) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if _, ok := c.Get(actorKey).(validation.Actor); ok {
				return next(c) // already signed in (branch UI session)
			}
			auth := c.Request().Header.Get(echo.HeaderAuthorization)
			key, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok || key == "" {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="arbiter"`)
				return validation.Errorf(validation.ReasonUnauthorized, "send Authorization: Bearer <api key>")
			}
			client, ok := cs.Authenticate(strings.TrimSpace(key))
			if !ok {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="arbiter", error="invalid_token"`)
				return validation.Errorf(validation.ReasonUnauthorized, "unknown API key")
			}
			c.Set(actorKey, validation.Actor{ID: client.ID, Roles: client.Roles})
			return next(c)
		}
	}
}

// require lets through actors holding any of the roles (admins hold all).
func require(roles ...validation.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			a := actorOf(c)
			for _, r := range roles {
				if a.Has(r) {
					return next(c)
				}
			}
			return validation.Errorf(validation.ReasonForbidden, "%s lacks the role for this call (needs one of %v)", a.ID, roles)
		}
	}
}

func actorOf(c echo.Context) validation.Actor {
	a, _ := c.Get(actorKey).(validation.Actor)
	return a
}
