package tokens_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testAudience = "card-redeemer"
	testTyp      = "arbiter-approval+jwt"
)

// t0 is when the test claims are issued; they expire ten minutes later.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func testClaims() tokens.Claims {
	return tokens.Claims{
		CheckID:    "chk_01HQZ6",
		CustomerID: "cust_42",
		Product:    "credit-card",
		Fence:      7,
		Audience:   []string{testAudience, "loan-redeemer"},
		IssuedAt:   t0,
		ExpiresAt:  t0.Add(10 * time.Minute),
	}
}

// fixedClock returns a clock stopped at t.
func fixedClock(t time.Time) func() time.Time {
	return func() time.Time { return t }
}

func mustKey(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	k, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatalf("GenerateKey: %v", err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey {
	return k.Public().(ed25519.PublicKey)
}

func mustIssuer(tb testing.TB, cfg tokens.IssuerConfig) *tokens.Issuer {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedClock(t0.Add(time.Minute))
	}
	iss, err := tokens.NewIssuer(cfg)
	if err != nil {
		tb.Fatalf("NewIssuer: %v", err)
	}
	return iss
}

func mustSign(tb testing.TB, iss *tokens.Issuer, c tokens.Claims) string {
	tb.Helper()
	tok, err := iss.Sign(c)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return tok
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// wireClaims returns testClaims as the JWT claims Sign writes, for tests
// that sign by hand and then add, drop or change one claim.
func wireClaims() jwt.MapClaims {
	c := testClaims()
	return jwt.MapClaims{
		"iss":     "arbiter",
		"sub":     c.CustomerID,
		"aud":     c.Audience,
		"exp":     c.ExpiresAt.Unix(),
		"nbf":     c.IssuedAt.Unix(),
		"iat":     c.IssuedAt.Unix(),
		"jti":     c.CheckID,
		"product": c.Product,
		"fence":   c.Fence,
	}
}

// without returns m less the given claims.
func without(m jwt.MapClaims, names ...string) jwt.MapClaims {
	for _, n := range names {
		delete(m, n)
	}
	return m
}

// with returns m with claim name set to v.
func with(m jwt.MapClaims, name string, v any) jwt.MapClaims {
	m[name] = v
	return m
}

// signRaw signs claims with any method and key, with the approval typ and
// the given kid, then applies header changes (a nil value deletes a header).
// It is how tests forge the tokens Verify must refuse.
func signRaw(tb testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims, header map[string]any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["typ"] = testTyp
	tok.Header["kid"] = kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s token: %v", m.Alg(), err)
	}
	return s
}

// segment returns the decoded JSON of part n (0 header, 1 payload) of token.
func segment(tb testing.TB, token string, n int) map[string]any {
	tb.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[n])
	if err != nil {
		tb.Fatalf("decode segment %d: %v", n, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatalf("segment %d: %v", n, err)
	}
	return m
}

// b64JSON returns the base64url JSON of v, a hand-built JWT segment.
func b64JSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// flipChar returns token with the character at the middle of part n
// replaced by another base64url character.
func flipChar(token string, n int) string {
	parts := strings.Split(token, ".")
	p := []byte(parts[n])
	i := len(p) / 2
	if p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	parts[n] = string(p)
	return strings.Join(parts, ".")
}

// assertClaims fails tb unless got and want are the same claims.
func assertClaims(tb testing.TB, got, want tokens.Claims) {
	tb.Helper()
	if got.CheckID != want.CheckID || got.CustomerID != want.CustomerID ||
		got.Product != want.Product || got.Fence != want.Fence ||
		!slices.Equal(got.Audience, want.Audience) ||
		!got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		tb.Fatalf("claims = %+v, want %+v", got, want)
	}
}
