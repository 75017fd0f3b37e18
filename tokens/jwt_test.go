package tokens_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/golang-jwt/jwt/v5"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	iss := mustIssuer(t, tokens.IssuerConfig{Key: mustKey(t)})
	want := testClaims()
	for _, aud := range want.Audience {
		got, err := iss.Verify(mustSign(t, iss, want), aud)
		if err != nil {
			t.Fatalf("Verify(%q): %v", aud, err)
		}
		assertClaims(t, got, want)
		if got, want := got.HasAudience(aud), true; got != want {
			t.Fatalf("HasAudience(%q) = %v, want %v", aud, got, want)
		}
	}
}

// TestSecretClaim: a token's secret travels as claim hs, and ParseOwn
// returns it as Verify does.
func TestSecretClaim(t *testing.T) {
	iss := mustIssuer(t, tokens.IssuerConfig{Key: mustKey(t), Now: fixedClock(t0.Add(time.Minute))})
	c := testClaims()
	c.Secret = "s3cret"
	tok := mustSign(t, iss, c)
	if got := segment(t, tok, 1)["hs"]; got != "s3cret" {
		t.Fatalf("hs = %v, want s3cret", got)
	}
	for name, f := range map[string]func(string, string) (tokens.Claims, error){"Verify": iss.Verify, "ParseOwn": iss.ParseOwn} {
		got, err := f(tok, testAudience)
		if err != nil || got.Secret != "s3cret" {
			t.Fatalf("%s = %+v, %v; want secret s3cret", name, got, err)
		}
		assertClaims(t, got, c)
	}
	c.Secret = ""
	if _, ok := segment(t, mustSign(t, iss, c), 1)["hs"]; ok {
		t.Fatal("a token without a secret has claim hs")
	}
}

// TestPolicyVersionClaim: the policy version travels as claim
// policy_version, absent when the check has none.
func TestPolicyVersionClaim(t *testing.T) {
	iss := mustIssuer(t, tokens.IssuerConfig{Key: mustKey(t), Now: fixedClock(t0.Add(time.Minute))})
	c := testClaims()
	c.PolicyVersion = "2026-07"
	tok := mustSign(t, iss, c)
	if got := segment(t, tok, 1)["policy_version"]; got != "2026-07" {
		t.Fatalf("policy_version = %v, want 2026-07", got)
	}
	got, err := iss.Verify(tok, testAudience)
	if err != nil || got.PolicyVersion != "2026-07" {
		t.Fatalf("Verify = %+v, %v; want policy version 2026-07", got, err)
	}
	c.PolicyVersion = ""
	if _, ok := segment(t, mustSign(t, iss, c), 1)["policy_version"]; ok {
		t.Fatal("a token without a policy version has claim policy_version")
	}
}

func TestSignIsDeterministic(t *testing.T) {
	key := mustKey(t)
	a := mustIssuer(t, tokens.IssuerConfig{Key: key})
	b := mustIssuer(t, tokens.IssuerConfig{Key: key, VerifyKeys: []ed25519.PublicKey{pub(mustKey(t))}})
	first := mustSign(t, a, testClaims())
	for _, iss := range []*tokens.Issuer{a, a, b} {
		if got, want := mustSign(t, iss, testClaims()), first; got != want {
			t.Fatalf("Sign again = %q, want %q", got, want)
		}
	}
	// Sub-second parts are not part of the token, so they cannot break replay.
	c := testClaims()
	c.IssuedAt = c.IssuedAt.Add(400 * time.Millisecond)
	if got, want := mustSign(t, a, c), first; got != want {
		t.Fatalf("Sign with sub-second iat = %q, want %q", got, want)
	}
}

func TestSignWireFormat(t *testing.T) {
	iss := mustIssuer(t, tokens.IssuerConfig{Key: mustKey(t), Issuer: "arbiter-test"})
	c := testClaims()
	c.Audience = []string{testAudience}
	tok := mustSign(t, iss, c)

	header := segment(t, tok, 0)
	for name, want := range map[string]string{"alg": "EdDSA", "typ": testTyp, "kid": iss.KeyID()} {
		if got := header[name]; got != want {
			t.Fatalf("header %q = %v, want %q", name, got, want)
		}
	}
	if got, want := len(header), 3; got != want {
		t.Fatalf("header has %d members (%v), want %d", got, header, want)
	}

	payload := segment(t, tok, 1)
	for name, want := range map[string]any{
		"iss": "arbiter-test", "sub": c.CustomerID, "jti": c.CheckID, "product": c.Product,
		"fence": float64(c.Fence), "iat": float64(t0.Unix()), "nbf": float64(t0.Unix()),
		"exp": float64(c.ExpiresAt.Unix()),
	} {
		if got := payload[name]; got != want {
			t.Fatalf("claim %q = %v (%T), want %v", name, got, got, want)
		}
	}
	aud, ok := payload["aud"].([]any)
	if !ok || len(aud) != 1 || aud[0] != testAudience {
		t.Fatalf("claim aud = %#v, want a JSON array [%q]", payload["aud"], testAudience)
	}
}

func TestSignRefusesClaimsThatCannotVerify(t *testing.T) {
	iss := mustIssuer(t, tokens.IssuerConfig{Key: mustKey(t)})
	tests := []struct {
		name   string
		change func(*tokens.Claims)
	}{
		{"empty CheckID", func(c *tokens.Claims) { c.CheckID = "" }},
		{"empty CustomerID", func(c *tokens.Claims) { c.CustomerID = "" }},
		{"empty Product", func(c *tokens.Claims) { c.Product = "" }},
		{"zero Fence", func(c *tokens.Claims) { c.Fence = 0 }},
		{"negative Fence", func(c *tokens.Claims) { c.Fence = -1 }},
		{"no Audience", func(c *tokens.Claims) { c.Audience = nil }},
		{"empty audience", func(c *tokens.Claims) { c.Audience = []string{testAudience, ""} }},
		{"zero IssuedAt", func(c *tokens.Claims) { c.IssuedAt = time.Time{} }},
		{"zero ExpiresAt", func(c *tokens.Claims) { c.ExpiresAt = time.Time{} }},
		{"expires before issued", func(c *tokens.Claims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClaims()
			tt.change(&c)
			if tok, err := iss.Sign(c); err == nil {
				t.Fatalf("Sign = %q, want an error", tok)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	testRefusals(t, "", (*tokens.Issuer).Verify, true)
}

// TestParseOwnRefuses: ParseOwn refuses what Verify refuses, for the same
// reasons, but for the signature of a token carrying a secret, which is
// not verified (the redeem script compares the secret instead); a token
// without one is verified in full.
func TestParseOwnRefuses(t *testing.T) {
	t.Run("without a secret", func(t *testing.T) { testRefusals(t, "", (*tokens.Issuer).ParseOwn, true) })
	t.Run("with a secret", func(t *testing.T) { testRefusals(t, "s3cret", (*tokens.Issuer).ParseOwn, false) })
}

// testRefusals runs the refusals of Verify through verify, on tokens with
// claim hs = secret unless it is "". Unless signed, a case refused only for
// its signature is accepted.
func testRefusals(t *testing.T, secret string, verify func(*tokens.Issuer, string, string) (tokens.Claims, error), signed bool) {
	tc := func() tokens.Claims {
		c := testClaims()
		c.Secret = secret
		return c
	}
	wc := func() jwt.MapClaims {
		m := wireClaims()
		if secret != "" {
			m["hs"] = secret
		}
		return m
	}
	key := mustKey(t)
	iss := mustIssuer(t, tokens.IssuerConfig{Key: key})
	kid := iss.KeyID()
	good := mustSign(t, iss, tc())

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(readTestdata(t, "rsa.pem"))
	rsaKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		reason   string // the refusal's reason, proving the case fails for the reason it names
		token    func(tb testing.TB) string
		audience string
		now      time.Time // zero: one minute after issue
		wrongAud bool      // also ErrWrongAudience
	}{
		{name: "tampered payload", reason: "bad signature", token: func(testing.TB) string { return flipChar(good, 1) }},
		{name: "forged payload", reason: "bad signature", token: func(tb testing.TB) string {
			parts := strings.Split(good, ".")
			parts[1] = b64JSON(tb, with(wc(), "fence", 8))
			return strings.Join(parts, ".")
		}},
		{name: "tampered signature", reason: "bad signature", token: func(testing.TB) string { return flipChar(good, 2) }},
		{name: "signature removed", reason: "bad signature", token: func(testing.TB) string { return good[:strings.LastIndex(good, ".")+1] }},
		{name: "alg none", reason: "algorithm not allowed", token: func(tb testing.TB) string {
			h := b64JSON(tb, map[string]string{"alg": "none", "typ": testTyp, "kid": kid})
			return h + "." + strings.Split(good, ".")[1] + "."
		}},
		{name: "HS256 keyed with the public key", reason: "algorithm not allowed", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodHS256, []byte(pub(key)), kid, wc(), nil)
		}},
		{name: "HS256 keyed with the kid", reason: "algorithm not allowed", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodHS256, []byte(kid), kid, wc(), nil)
		}},
		{name: "ES256 by another key with our kid", reason: "algorithm not allowed", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodES256, ecKey, kid, wc(), nil)
		}},
		{name: "RS256 by another key with our kid", reason: "algorithm not allowed", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodRS256, rsaKey, kid, wc(), nil)
		}},
		{name: "EdDSA by another key with our kid", reason: "bad signature", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, mustKey(tb), kid, wc(), nil)
		}},
		{name: "unknown kid", reason: "unknown key id", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, "some-other-kid", wc(), nil)
		}},
		{name: "no kid", reason: "unknown key id", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, wc(), map[string]any{"kid": nil})
		}},
		{name: "wrong typ", reason: "wrong typ", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, wc(), map[string]any{"typ": "JWT"})
		}},
		{name: "no typ", reason: "wrong typ", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, wc(), map[string]any{"typ": nil})
		}},
		{name: "crit header", reason: "unsupported crit header", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, wc(), map[string]any{"crit": []string{"exp"}})
		}},
		{name: "expired", reason: "expired", now: t0.Add(10*time.Minute + 5*time.Second), token: func(testing.TB) string { return good }},
		{name: "long expired", reason: "expired", now: t0.Add(24 * time.Hour), token: func(testing.TB) string { return good }},
		{name: "not yet valid", reason: "not valid yet", now: t0.Add(-time.Hour), token: func(testing.TB) string { return good }},
		{name: "nbf in the future", reason: "not valid yet", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, with(wc(), "nbf", t0.Add(5*time.Minute).Unix()), nil)
		}},
		{name: "iat in the future", reason: "issued in the future", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, with(wc(), "iat", t0.Add(5*time.Minute).Unix()), nil)
		}},
		{name: "wrong audience", reason: "wrong audience", audience: "mortgage-redeemer", wrongAud: true, token: func(testing.TB) string { return good }},
		{name: "no audience asked", reason: "wrong audience", audience: "-", wrongAud: true, token: func(testing.TB) string { return good }},
		{name: "wrong issuer", reason: "wrong issuer", token: func(tb testing.TB) string {
			return mustSign(tb, mustIssuer(tb, tokens.IssuerConfig{Key: key, Issuer: "mallory"}), tc())
		}},
		{name: "missing iss", reason: "missing required claim", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, without(wc(), "iss"), nil)
		}},
		{name: "missing exp", reason: "missing required claim", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, without(wc(), "exp"), nil)
		}},
		{name: "missing aud", reason: "missing required claim", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, without(wc(), "aud"), nil)
		}},
		{name: "missing jti", reason: "missing jti", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, without(wc(), "jti"), nil)
		}},
		{name: "missing sub", reason: "missing sub", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, without(wc(), "sub"), nil)
		}},
		{name: "missing product", reason: "missing product", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, without(wc(), "product"), nil)
		}},
		{name: "missing fence", reason: "fence not above 0", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, without(wc(), "fence"), nil)
		}},
		{name: "zero fence", reason: "fence not above 0", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, with(wc(), "fence", 0), nil)
		}},
		{name: "negative fence", reason: "fence not above 0", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, with(wc(), "fence", -3), nil)
		}},
		{name: "fence not a number", reason: "malformed", token: func(tb testing.TB) string {
			return signRaw(tb, jwt.SigningMethodEdDSA, key, kid, with(wc(), "fence", "7"), nil)
		}},
		{name: "empty", reason: "malformed", token: func(testing.TB) string { return "" }},
		{name: "garbage", reason: "malformed", token: func(testing.TB) string { return "not.a.token" }},
		{name: "two segments", reason: "malformed", token: func(testing.TB) string { return good[:strings.LastIndex(good, ".")] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := iss
			if !tt.now.IsZero() {
				v = mustIssuer(t, tokens.IssuerConfig{Key: key, Now: fixedClock(tt.now)})
			}
			aud := tt.audience
			switch aud {
			case "":
				aud = testAudience
			case "-":
				aud = ""
			}
			c, err := verify(v, tt.token(t), aud)
			if !signed && tt.reason == "bad signature" {
				// Accepted, unless the change broke the payload itself (a
				// flipped character may).
				if err == nil && c.CheckID != "" {
					return
				}
				if !errors.Is(err, tokens.ErrTokenInvalid) || !strings.HasSuffix(err.Error(), ": malformed") {
					t.Fatalf("unsigned check of %s = %+v, %v; want it accepted or malformed", tt.name, c, err)
				}
				return
			}
			if got, want := errors.Is(err, tokens.ErrTokenInvalid), true; got != want {
				t.Fatalf("Verify = %+v, %v; errors.Is(err, ErrTokenInvalid) = %v, want %v", c, err, got, want)
			}
			if got, want := errors.Is(err, tokens.ErrWrongAudience), tt.wrongAud; got != want {
				t.Fatalf("Verify error %v: errors.Is(err, ErrWrongAudience) = %v, want %v", err, got, want)
			}
			if got, want := strings.HasSuffix(err.Error(), ": "+tt.reason), true; got != want {
				t.Fatalf("Verify error %q ends with reason %q: %v, want %v", err, tt.reason, got, want)
			}
			if got, want := c.CheckID, ""; got != want {
				t.Fatalf("refused Verify returned CheckID %q, want %q", got, want)
			}
		})
	}
}

func TestVerifyClock(t *testing.T) {
	key := mustKey(t)
	tok := mustSign(t, mustIssuer(t, tokens.IssuerConfig{Key: key}), testClaims())
	exp := testClaims().ExpiresAt
	tests := []struct {
		name   string
		now    time.Time
		leeway time.Duration
		ok     bool
	}{
		{"at issue", t0, 0, true},
		{"within default leeway before issue", t0.Add(-5 * time.Second), 0, true},
		{"beyond default leeway before issue", t0.Add(-6 * time.Second), 0, false},
		{"just before expiry", exp.Add(-time.Second), 0, true},
		{"within default leeway after expiry", exp.Add(4 * time.Second), 0, true},
		{"at expiry plus default leeway", exp.Add(5 * time.Second), 0, false},
		{"within wider leeway after expiry", exp.Add(20 * time.Second), 30 * time.Second, true},
		{"beyond wider leeway after expiry", exp.Add(30 * time.Second), 30 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := mustIssuer(t, tokens.IssuerConfig{Key: key, Now: fixedClock(tt.now), Leeway: tt.leeway})
			_, err := iss.Verify(tok, testAudience)
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("Verify at %v: err = %v, want ok = %v", tt.now, err, want)
			}
		})
	}
}

func TestNewIssuerRefuses(t *testing.T) {
	key := mustKey(t)
	tests := []struct {
		name   string
		cfg    tokens.IssuerConfig
		errKey bool
	}{
		{"no key", tokens.IssuerConfig{}, true},
		{"short key", tokens.IssuerConfig{Key: key[:32]}, true},
		{"short verify key", tokens.IssuerConfig{Key: key, VerifyKeys: []ed25519.PublicKey{pub(key)[:31]}}, true},
		{"negative leeway", tokens.IssuerConfig{Key: key, Leeway: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := tokens.NewIssuer(tt.cfg)
			if err == nil {
				t.Fatalf("NewIssuer = %v, want an error", iss)
			}
			if got, want := errors.Is(err, tokens.ErrKey), tt.errKey; got != want {
				t.Fatalf("NewIssuer error %v: errors.Is(err, ErrKey) = %v, want %v", err, got, want)
			}
		})
	}
}

func TestIssuerDefaults(t *testing.T) {
	key := mustKey(t)
	iss := mustIssuer(t, tokens.IssuerConfig{Key: key})
	if got, want := iss.IssuerName(), "arbiter"; got != want {
		t.Fatalf("IssuerName() = %q, want %q", got, want)
	}
	if got, want := iss.KeyID(), tokens.KeyID(pub(key)); got != want {
		t.Fatalf("KeyID() = %q, want %q", got, want)
	}
	// Now defaults to time.Now: a token issued a minute ago verifies.
	live, err := tokens.NewIssuer(tokens.IssuerConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	c := testClaims()
	c.IssuedAt = time.Now().Add(-time.Minute)
	c.ExpiresAt = c.IssuedAt.Add(10 * time.Minute)
	if _, err := live.Verify(mustSign(t, live, c), testAudience); err != nil {
		t.Fatalf("Verify with the real clock: %v", err)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := mustKey(t), mustKey(t)
	oldIss := mustIssuer(t, tokens.IssuerConfig{Key: oldKey})
	oldTok := mustSign(t, oldIss, testClaims())

	newIss := mustIssuer(t, tokens.IssuerConfig{Key: newKey, VerifyKeys: []ed25519.PublicKey{pub(oldKey)}})
	newTok := mustSign(t, newIss, testClaims())
	if got, want := segment(t, newTok, 0)["kid"], tokens.KeyID(pub(newKey)); got != want {
		t.Fatalf("new token kid = %v, want %v", got, want)
	}

	t.Run("issuer accepts old and new tokens", func(t *testing.T) {
		for _, tok := range []string{oldTok, newTok} {
			if _, err := newIss.Verify(tok, testAudience); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
	})
	t.Run("issuer without the old key refuses old tokens", func(t *testing.T) {
		iss := mustIssuer(t, tokens.IssuerConfig{Key: newKey})
		if _, err := iss.Verify(oldTok, testAudience); !errors.Is(err, tokens.ErrTokenInvalid) {
			t.Fatalf("Verify(old token) = %v, want ErrTokenInvalid", err)
		}
	})
	t.Run("JWKS lists both keys, signing key first", func(t *testing.T) {
		keys := jwksKeys(t, newIss.JWKS())
		if got, want := len(keys), 2; got != want {
			t.Fatalf("JWKS has %d keys, want %d", got, want)
		}
		for n, k := range []ed25519.PublicKey{pub(newKey), pub(oldKey)} {
			if got, want := keys[n]["kid"], tokens.KeyID(k); got != want {
				t.Fatalf("JWKS key %d kid = %q, want %q", n, got, want)
			}
		}
	})
	t.Run("verifier from JWKS accepts old and new tokens", func(t *testing.T) {
		v, err := tokens.NewVerifierFromJWKS(newIss.JWKS(), "", fixedClock(t0.Add(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{oldTok, newTok} {
			if _, err := v.Verify(tok, testAudience); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
	})
}

func TestVerifyConcurrently(t *testing.T) {
	iss := mustIssuer(t, tokens.IssuerConfig{Key: mustKey(t)})
	tok := mustSign(t, iss, testClaims())
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := iss.Verify(tok, testAudience); err != nil {
				errs <- err
			}
			if _, err := iss.Sign(testClaims()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
