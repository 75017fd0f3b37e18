package tokens

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestSignAsJWT pins Sign's token to what jwt.Token.SignedString makes of
// the same header and claims, byte for byte: tokens already issued (and
// idempotent replays) stay the same.
func TestSignAsJWT(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(IssuerConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 5, 40, 1, 999_999_999, time.UTC)
	for _, c := range []Claims{
		{CheckID: "chk_1", CustomerID: "C-1", Product: "credit_card", Fence: 1, Audience: []string{"card-service"},
			IssuedAt: at, ExpiresAt: at.Add(5 * time.Minute)},
		{CheckID: "chk_2", CustomerID: `C-<&>"\ é` + "\u2028\x7f", Product: "loan", Fence: 1 << 40,
			Audience: []string{"a", "b"}, IssuedAt: at, ExpiresAt: at.Add(time.Second), Secret: "s3cr3t", PolicyVersion: "v7"},
	} {
		got, err := iss.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c.wire(iss.verifier.issuer))
		tok.Header["typ"] = tokenType
		tok.Header["kid"] = iss.kid
		want, err := tok.SignedString(iss.key)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Sign(%+v) =\n%s\nwant (jwt.Token.SignedString)\n%s", c, got, want)
		}
	}
}
