package tokens_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
)

// jwksKeys returns the keys of a JWKS document as generic JSON objects.
func jwksKeys(tb testing.TB, doc []byte) []map[string]string {
	tb.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		tb.Fatalf("JWKS %s: %v", doc, err)
	}
	return set.Keys
}

func TestIssuerJWKS(t *testing.T) {
	key, old := mustKey(t), mustKey(t)
	// The signing key and a duplicate old key are listed once.
	iss := mustIssuer(t, tokens.IssuerConfig{Key: key, VerifyKeys: []ed25519.PublicKey{old.Public().(ed25519.PublicKey), pub(key), pub(old)}})
	keys := jwksKeys(t, iss.JWKS())
	if got, want := len(keys), 2; got != want {
		t.Fatalf("JWKS has %d keys, want %d: %s", got, want, iss.JWKS())
	}
	for n, k := range []ed25519.PublicKey{pub(key), pub(old)} {
		want := map[string]string{
			"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(k),
			"kid": tokens.KeyID(k), "use": "sig", "alg": "EdDSA",
		}
		if got, want := fmt.Sprint(keys[n]), fmt.Sprint(want); got != want {
			t.Fatalf("JWKS key %d = %s, want %s", n, got, want)
		}
	}
	// Callers get a copy: scribbling on it does not change the Issuer's.
	doc := iss.JWKS()
	doc[0] = 'X'
	if got, want := iss.JWKS()[0], byte('{'); got != want {
		t.Fatalf("JWKS()[0] after caller's write = %q, want %q", got, want)
	}
}

func TestNewVerifierFromJWKS(t *testing.T) {
	key := mustKey(t)
	iss := mustIssuer(t, tokens.IssuerConfig{Key: key, Issuer: "arbiter-eu"})
	x := base64.RawURLEncoding.EncodeToString(pub(key))
	rsa := `{"kty":"RSA","kid":"r1","n":"sXch","e":"AQAB"}`
	x25519 := `{"kty":"OKP","crv":"X25519","kid":"x1","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`
	encKey := `{"kty":"OKP","crv":"Ed25519","use":"enc","x":"` + x + `"}`
	noKid := `{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}`

	t.Run("verifies the issuer's tokens", func(t *testing.T) {
		v, err := tokens.NewVerifierFromJWKS(iss.JWKS(), "arbiter-eu", fixedClock(t0.Add(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.HasKey(iss.KeyID()), true; got != want {
			t.Fatalf("HasKey(issuer's kid) = %v, want %v", got, want)
		}
		if got, want := v.HasKey("nope"), false; got != want {
			t.Fatalf("HasKey(nope) = %v, want %v", got, want)
		}
		got, err := v.Verify(mustSign(t, iss, testClaims()), testAudience)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		assertClaims(t, got, testClaims())
	})
	t.Run("applies the same rules", func(t *testing.T) {
		v, err := tokens.NewVerifierFromJWKS(iss.JWKS(), "arbiter", fixedClock(t0.Add(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(mustSign(t, iss, testClaims()), testAudience); !errors.Is(err, tokens.ErrTokenInvalid) {
			t.Fatalf("Verify with another issuer = %v, want ErrTokenInvalid", err)
		}
		late, err := tokens.NewVerifierFromJWKS(iss.JWKS(), "arbiter-eu", fixedClock(t0.Add(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := late.Verify(mustSign(t, iss, testClaims()), testAudience); !errors.Is(err, tokens.ErrTokenInvalid) {
			t.Fatalf("Verify of expired token = %v, want ErrTokenInvalid", err)
		}
		if _, err := v.Verify(mustSign(t, iss, testClaims()), "other"); !errors.Is(err, tokens.ErrWrongAudience) {
			t.Fatalf("Verify for another audience = %v, want ErrWrongAudience", err)
		}
	})
	t.Run("keys without kid are known by thumbprint", func(t *testing.T) {
		v, err := tokens.NewVerifierFromJWKS([]byte(`{"keys":[`+rsa+`,`+noKid+`]}`), "arbiter-eu", fixedClock(t0.Add(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.HasKey(tokens.KeyID(pub(key))), true; got != want {
			t.Fatalf("HasKey(thumbprint) = %v, want %v", got, want)
		}
		if got, want := v.HasKey("r1"), false; got != want {
			t.Fatalf("HasKey(RSA kid) = %v, want %v", got, want)
		}
	})

	refusals := []struct {
		name string
		doc  string
	}{
		{"not JSON", `keys`},
		{"empty", ``},
		{"no keys", `{"keys":[]}`},
		{"only RSA, X25519 and encryption keys", `{"keys":[` + rsa + `,` + x25519 + `,` + encKey + `]}`},
		{"short x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg"}]}`},
		{"x not base64url", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]}`},
		{"private key published", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}`},
		{"one kid, two keys", `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"` + x + `"},{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`},
	}
	for _, tt := range refusals {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			v, err := tokens.NewVerifierFromJWKS([]byte(tt.doc), "", nil)
			if got, want := errors.Is(err, tokens.ErrKey), true; got != want {
				t.Fatalf("NewVerifierFromJWKS = %v, %v; errors.Is(err, ErrKey) = %v, want %v", v, err, got, want)
			}
		})
	}
}
