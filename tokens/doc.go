// Package tokens issues and verifies the two credentials arbiter hands out
// with a hold: a 6-digit TOTP code (RFC 6238) that the customer reads out,
// and a signed approval JWT that a product service redeems.
//
// Approval tokens are signed with Ed25519 (JWS "EdDSA", RFC 8037). Every key
// is named by its RFC 7638 JWK thumbprint, which is the token's "kid" header
// and the key's "kid" in the published JWKS, so rotation needs no key registry:
// an Issuer signs with its current key and still accepts, and publishes, the
// older keys listed in IssuerConfig.VerifyKeys. Product services verify
// offline with a Verifier built from that JWKS.
//
// Verification fails closed. The algorithm is pinned to EdDSA whatever the
// header says, the key is chosen by kid among known keys only, and the token
// type, issuer, audience, expiry and the arbiter claims are all required.
// Every refusal wraps ErrTokenInvalid; a token for another redeemer also wraps
// ErrWrongAudience. Refusal messages carry a fixed short reason and never
// echo token contents.
//
// arbiter itself redeems its tokens with Issuer.ParseOwn, which checks all of
// that but the signature of a token carrying its check's secret (claim "hs"):
// the check keeps the secret's digest, and the store compares it instead.
//
// Signing is deterministic (Ed25519 signatures are, and the header and claims
// are encoded in a fixed order), so the same Claims always give the same
// token; arbiter relies on this to replay idempotent responses byte for byte.
//
// tokens is the only arbiter package that imports the JWT and OTP libraries.
// It knows nothing of HTTP or Redis, and holds no state besides keys.
package tokens
