package web_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

// reencoded is token with its payload changed by edit and its header and
// signature kept: what anyone holding a token can make of it.
func reencoded(tb testing.TB, token string, edit func(map[string]any)) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil {
		tb.Fatal(err)
	}
	edit(claims)
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

// TestTokenSecret: a redemption does not verify arbiter's own signature
// when the token carries its check's secret ("hs"); the redeem script
// compares the secret's digest with the check's instead. So a token is
// redeemed only with the secret arbiter put in it: altered, copied from
// another check, or removed (which brings the signature check back), it
// is refused, on the live hold and on a replay alike.
func TestTokenSecret(t *testing.T) {
	a := newAPI(t)
	redeem := func(token string) reply {
		return a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": token})
	}
	claimsOf := func(token string) tokens.Claims {
		t.Helper()
		c, err := a.issuer.Verify(token, "card-service")
		if err != nil {
			t.Fatal(err)
		}
		if c.Secret == "" {
			t.Fatal("a new check's token carries no secret")
		}
		return c
	}
	tok1 := a.mustCheck(t, "C-1", "credit_card").str("token")
	tok2 := a.mustCheck(t, "C-2", "credit_card").str("token")
	c1, c2 := claimsOf(tok1), claimsOf(tok2)
	if c1.Secret == c2.Secret {
		t.Fatal("two checks share a token secret")
	}
	altered := reencoded(t, tok1, func(m map[string]any) { m["hs"] = c2.Secret })
	stripped := reencoded(t, tok1, func(m map[string]any) { delete(m, "hs") })
	// C-2's claims with C-1's secret (and C-1's signature).
	copied := reencoded(t, tok2, func(m map[string]any) { m["hs"] = c1.Secret })
	noSecret := c1
	noSecret.Secret = ""
	unsecret, err := a.issuer.Sign(noSecret) // genuine, but without the secret
	if err != nil {
		t.Fatal(err)
	}

	refusals := []struct{ name, token, detail string }{
		{"an altered secret", altered, ""},
		{"another check's secret", copied, ""},
		{"the secret removed: the signature is verified and fails", stripped, "the token's signature does not verify"},
		{"arbiter's own signature without the secret, for a check that keeps a digest", unsecret, ""},
	}
	refuseAll := func(t *testing.T) {
		for _, tt := range refusals {
			t.Run(tt.name, func(t *testing.T) {
				got := redeem(tt.token)
				wantStatus(t, got, http.StatusForbidden, validation.ReasonTokenInvalid)
				if tt.detail != "" && got.str("detail") != tt.detail {
					t.Fatalf("detail = %q, want %q", got.str("detail"), tt.detail)
				}
				wantPlainDetail(t, got)
			})
		}
	}
	t.Run("the live holds", refuseAll)
	wantStatus(t, redeem(tok1), http.StatusCreated)
	t.Run("replays of the redeemed check", refuseAll)
	wantStatus(t, redeem(tok1), http.StatusOK)
	wantStatus(t, redeem(tok2), http.StatusCreated)

	t.Run("the signature of a token with the right secret is not what is checked", func(t *testing.T) {
		// It buys nothing: whoever has the secret has the genuine token.
		// Product services verifying offline still refuse it.
		tok := a.mustCheck(t, "C-3", "credit_card").str("token")
		parts := strings.Split(tok, ".")
		bad := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		if _, err := a.issuer.Verify(bad, "card-service"); err == nil {
			t.Fatal("a tampered signature verifies")
		}
		wantStatus(t, redeem(bad), http.StatusCreated)
		wantStatus(t, redeem(tok), http.StatusOK)
	})
}
