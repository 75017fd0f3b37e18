package validation

import (
	"crypto/sha256"
	"encoding/base64"
)

// An approval token carries a secret of its check (claim "hs"), and the
// check keeps only its digest (TokenHash), so a redemption can tell a token
// arbiter issued from a forged one by comparing digests, in the same
// script that redeems, instead of verifying arbiter's own signature again.
// The token is signed after the check script has placed the hold (it
// carries the fence the script chose), so the check cannot keep a digest of
// the token itself: it keeps that of a secret chosen before.
//
// The secret is derived from the hold's TOTP secret (fresh from
// crypto/rand per check, and never leaving arbiter) by a one-way function,
// so that an idempotent replay of a check, which returns the hold's TOTP
// secret, signs the very same token again; and knowing a token's secret
// tells nothing of the TOTP secret.

// TokenSecretSize is the size of a token secret, in bytes (128 bits).
const TokenSecretSize = 16

// TokenSecret returns the token secret of the check whose TOTP secret is
// otpSecret (base64url, no padding), or "" for none.
func TokenSecret(otpSecret []byte) string {
	if len(otpSecret) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("arbiter approval token secret\x00"))
	h.Write(otpSecret)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:TokenSecretSize])
}

// TokenHash is the digest a check keeps of its token secret: SHA-256,
// base64url without padding; "" for no secret.
func TokenHash(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TokenProof is what a redemption by approval token shows of the token,
// beyond its claims: its secret (claim "hs"), compared with the check's
// digest by the store; or, for a token without one (issued before tokens
// carried it), that its signature was verified. A check that keeps a
// digest is redeemed only with the secret, so removing the claim from a
// token does not help: its signature no longer verifies.
type TokenProof struct {
	Secret   string
	Verified bool
}
