package deploy_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// readExamples parses the example clients file and policy with the parsers
// arbiter itself uses.
func readExamples(tb testing.TB) (*clientauth.Clients, *validation.Policy) {
	tb.Helper()
	raw, err := os.ReadFile("clients.example.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	clients, err := clientauth.Parse(raw)
	if err != nil {
		tb.Fatalf("clients.example.yaml: %v", err)
	}
	raw, err = os.ReadFile("policy.example.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := policyfile.Parse(raw)
	if err != nil {
		tb.Fatalf("policy.example.yaml: %v", err)
	}
	return clients, policy
}

func TestExamples(t *testing.T) {
	clients, policy := readExamples(t)
	t.Run("clients file holds hashes, never a raw key", func(t *testing.T) {
		var doc struct {
			Clients []map[string]any `yaml:"clients"`
		}
		raw, _ := os.ReadFile("clients.example.yaml")
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for _, c := range doc.Clients {
			if _, ok := c["key"]; ok {
				t.Errorf("client %v has a raw key: write key_sha256 (arbiter hash)", c["id"])
			}
		}
		for _, a := range clients.Agents {
			if cost, err := bcrypt.Cost([]byte(a.PasswordBcrypt)); err != nil || cost != bcrypt.DefaultCost {
				t.Errorf("agent %s: password_bcrypt cost = %d, %v; want %d, what arbiter hash -password makes", a.Username, cost, err, bcrypt.DefaultCost)
			}
		}
	})
	t.Run("every redeemer of the policy is a redeemer client of the clients file", func(t *testing.T) {
		for _, name := range policy.Names() {
			for _, id := range policy.Products[name].Redeemers {
				i := slices.IndexFunc(clients.Clients, func(c clientauth.Client) bool { return c.ID == id })
				if i < 0 || !slices.Contains(clients.Clients[i].Roles, validation.RoleRedeemer) {
					t.Errorf("product %s: redeemer %q is not a client with the redeemer role in clients.example.yaml", name, id)
				}
			}
		}
	})
}

// TestArbiterStartsOnExamples builds arbiter, makes its signing key with
// arbiter keygen, and starts it in production mode on a real redis-server
// with the example clients file and policy, until /readyz answers 200 and
// the JWKS publishes the kid keygen printed.
func TestArbiterStartsOnExamples(t *testing.T) {
	readExamples(t) // a parse error is clearer than a failed start
	srv := redistest.MustStartRedis(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "arbiter")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/arbiter-bank/arbiter/cmd/arbiter").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key := filepath.Join(dir, "signing.pem")
	out, err := exec.Command(bin, "keygen", "-o", key).Output()
	if err != nil {
		t.Fatalf("arbiter keygen: %v", err)
	}
	_, kid, ok := strings.Cut(string(out), "kid: ")
	if kid = strings.TrimSpace(kid); !ok || kid == "" {
		t.Fatalf("arbiter keygen printed no kid: %q", out)
	}
	policy := feedKeysIn(t, dir)

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	for _, kv := range os.Environ() { // the child reads only the settings given here
		if !strings.HasPrefix(kv, "ARBITER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "ARBITER_REDIS_URL="+srv.URL(), "ARBITER_SIGNING_KEY="+key,
		"ARBITER_CLIENTS=clients.example.yaml", "ARBITER_POLICY="+policy)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		_ = cmd.Wait()
		t.Fatalf("arbiter exited before listening: %s", stderr.String())
	}
	base, ok := strings.CutPrefix(lines.Text(), "arbiter listening on ")
	if !ok {
		t.Fatalf("first line = %q", lines.Text())
	}
	waitReady(t, base)

	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	if len(jwks.Keys) != 1 || jwks.Keys[0].Kid != kid {
		t.Fatalf("JWKS = %+v, want the one key keygen printed, kid %s", jwks.Keys, kid)
	}
}

// feedKeysIn writes a copy of the example policy into dir whose reconcile
// sources read their feed keys from dir (the example names a secret's
// mount), with those key files, and returns the copy's path.
func feedKeysIn(tb testing.TB, dir string) string {
	tb.Helper()
	raw, err := os.ReadFile("policy.example.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	const mount = "/etc/arbiter/feeds/"
	if !strings.Contains(string(raw), mount) {
		tb.Fatalf("policy.example.yaml no longer reads feed keys from %s: update this test", mount)
	}
	for _, name := range []string{"card-service.key", "loan-service.key"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("feed-key-"+name+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(raw), mount, dir+"/")), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// waitReady polls base's /readyz until it answers 200, for at most 20s.
func waitReady(tb testing.TB, base string) {
	tb.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			tb.Fatalf("arbiter not ready in 20s: last %v", err)
		}
	}
}
