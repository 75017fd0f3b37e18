package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/tokens"
)

// command runs `arbiter args...` with stdin and returns its stdout.
func command(tb testing.TB, stdin string, args ...string) (string, error) {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"arbiter"}, args...), func(string) string { return "" },
		strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), err
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.pem")
	pubPath := filepath.Join(filepath.Dir(path), "signing.pub.pem")
	out, err := command(t, "", "keygen", "-o", path, "-pub", pubPath)
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	t.Run("writes a key tokens loads, readable by its owner only", func(t *testing.T) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Fatalf("mode = %v, want %v", got, want)
		}
		pem, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		key, err := tokens.ParsePrivateKeyPEM(pem)
		if err != nil {
			t.Fatalf("tokens does not load the key: %v", err)
		}
		iss, err := tokens.NewIssuer(tokens.IssuerConfig{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if want := "kid: " + iss.KeyID() + "\n"; !strings.Contains(out, want) {
			t.Fatalf("keygen printed %q, want it to hold %q, the kid the issuer signs with", out, want)
		}
		pubPEM, err := os.ReadFile(pubPath)
		if err != nil {
			t.Fatal(err)
		}
		pubs, err := tokens.ParsePublicKeysPEM(pubPEM)
		if err != nil || len(pubs) != 1 || !pubs[0].Equal(key.Public()) {
			t.Fatalf("-pub file holds %v, %v; want the signing key's public key", pubs, err)
		}
		if strings.Contains(string(pubPEM), "PRIVATE") {
			t.Fatal("-pub file holds a private key")
		}
	})
	t.Run("refuses to overwrite -pub, writing neither file", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "new.pem")
		if _, err := command(t, "", "keygen", "-o", other, "-pub", pubPath); err == nil || !strings.Contains(err.Error(), "-force") {
			t.Fatalf("keygen over an existing -pub: error = %v, want a refusal naming -force", err)
		}
		if _, err := os.Stat(other); !os.IsNotExist(err) {
			t.Fatalf("the refused keygen wrote %s: %v", other, err)
		}
	})
	t.Run("refuses to overwrite", func(t *testing.T) {
		before, _ := os.ReadFile(path)
		if _, err := command(t, "", "keygen", "-o", path); err == nil || !strings.Contains(err.Error(), "-force") {
			t.Fatalf("second keygen error = %v, want a refusal naming -force", err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("the refused keygen changed the file")
		}
	})
	t.Run("-force replaces, mode 0600 even over a looser file", func(t *testing.T) {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(path)
		if _, err := command(t, "", "keygen", "-force", "-o", path); err != nil {
			t.Fatalf("keygen -force: %v", err)
		}
		after, _ := os.ReadFile(path)
		if bytes.Equal(before, after) {
			t.Fatal("keygen -force kept the old key")
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode after -force = %v, want 0600", fi.Mode().Perm())
		}
		if _, err := tokens.ParsePrivateKeyPEM(after); err != nil {
			t.Fatal(err)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keygen-*")); len(left) > 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	})
	t.Run("requires -o", func(t *testing.T) {
		if _, err := command(t, "", "keygen"); err == nil || !strings.Contains(err.Error(), "-o FILE") {
			t.Fatalf("keygen without -o: error = %v", err)
		}
	})
}

// TestHashAuthenticates: a clients file built from what `arbiter hash`
// prints lets that API key call the API and that agent sign in, and the
// secret is never printed.
func TestHashAuthenticates(t *testing.T) {
	const key, password = "card-service-key-0123456789", "correct horse battery"
	keyLine, err := command(t, key+"\n", "hash")
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	pwLine, err := command(t, password+"\n", "hash", "-password")
	if err != nil {
		t.Fatalf("hash -password: %v", err)
	}
	for _, out := range []string{keyLine, pwLine} {
		if strings.Contains(out, key) || strings.Contains(out, password) {
			t.Fatalf("hash printed the secret: %q", out)
		}
	}
	hash := strings.TrimPrefix(strings.TrimSpace(pwLine), "password_bcrypt: ")
	if cost, err := bcrypt.Cost([]byte(strings.Trim(hash, `"`))); err != nil || cost != bcrypt.DefaultCost {
		t.Fatalf("password hash cost = %d, %v; want %d, the cost web's dummy hash evens out", cost, err, bcrypt.DefaultCost)
	}
	clients := "clients:\n  - id: card-service\n    roles: [checker, redeemer]\n    " + keyLine +
		"agents:\n  - username: ana\n    branch: Lisbon-01\n    " + pwLine
	env := map[string]string{"ARBITER_CLIENTS": writeFile(t, "clients.yaml", clients)}
	s := startRun(t, env)

	// The trailing newline piped in was not hashed: it could not be sent.
	if status, body := post(t, s.base+"/v1/checks", key, `{"customer_id":"C-1001","product":"credit_card"}`); status != http.StatusCreated {
		t.Fatalf("check with the hashed key = %d %v, want 201", status, body)
	}
	br := &browser{}
	if got, want := br.signIn(t, s.base, "ana", password), http.StatusOK; got != want {
		t.Fatalf("sign in with the hashed password = %d, want %d", got, want)
	}
	if got, want := (&browser{}).signIn(t, s.base, "ana", password+"\n"), http.StatusUnauthorized; got != want {
		t.Fatalf("sign in with the password and its newline = %d, want %d", got, want)
	}
}

func TestHashRefuses(t *testing.T) {
	tests := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"empty input", "", nil, "empty"},
		{"a lone newline", "\n", nil, "empty"},
		{"two lines", "card-service-key-0123456789\n\n", nil, "more than one line"},
		{"a short key", "short\n", nil, "16 or more"},
		{"a password beyond bcrypt's 72 bytes", strings.Repeat("p", 73), []string{"-password"}, "72"},
		{"a stray argument", "card-service-key-0123456789", []string{"secret"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := command(t, tt.stdin, append([]string{"hash"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("hash error = %v, want it to mention %q", err, tt.want)
			}
			if out != "" {
				t.Fatalf("hash printed %q on a refusal", out)
			}
		})
	}
}

func TestHelpListsCommands(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"arbiter", "-h"}, func(string) string { return "" }, nil, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"arbiter keygen", "arbiter hash", "arbiter migrate"} {
		if !strings.Contains(stderr.String(), c) {
			t.Errorf("-h does not list %q:\n%s", c, stderr.String())
		}
	}
}
