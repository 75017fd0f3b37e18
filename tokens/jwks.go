package tokens

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"
)

// jwk is one JSON Web Key (RFC 7517) of type OKP (RFC 8037). Field order
// fixes the order of members in the JWKS that Issuer publishes.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	D   string `json:"d,omitempty"` // read only to refuse published private keys
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

type jwkSet struct {
	Keys []json.RawMessage `json:"keys"`
}

// marshalJWKS returns the JWKS of keys, in order.
func marshalJWKS(keys []ed25519.PublicKey) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   b64.EncodeToString(k),
			Kid: KeyID(k),
			Use: "sig",
			Alg: algEdDSA,
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("tokens: marshal JWKS: %w", err)
	}
	return b, nil
}

// NewVerifierFromJWKS returns a Verifier that accepts tokens signed by the
// Ed25519 keys of the JSON Web Key Set jwks (as published by Issuer.JWKS),
// issued by issuer ("" means "arbiter"), checked against the clock now (nil
// means time.Now) with 5s of leeway.
//
// Only keys with "kty":"OKP" and "crv":"Ed25519" are taken, and of those
// only keys whose "use" and "alg", when present, are "sig" and "EdDSA";
// other keys are ignored. A key is known by its "kid", or by its RFC 7638
// thumbprint if it has none. It returns an error wrapping ErrKey if jwks is
// not a JWKS, if an Ed25519 key is malformed or carries its private part, if
// two keys share a kid, or if no Ed25519 key is left.
func NewVerifierFromJWKS(jwks []byte, issuer string, now func() time.Time) (*Verifier, error) {
	var set jwkSet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("%w: JWKS: %v", ErrKey, err)
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for n, raw := range set.Keys {
		kid, pub, err := parseJWK(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: JWKS key %d: %s", ErrKey, n, err)
		}
		if pub == nil {
			continue
		}
		if have, dup := keys[kid]; dup && !have.Equal(pub) {
			return nil, fmt.Errorf("%w: JWKS key %d: kid %q names two different keys", ErrKey, n, kid)
		}
		keys[kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: JWKS has no Ed25519 signing key", ErrKey)
	}
	return newVerifierKIDs(issuer, keys, now, 0), nil
}

// parseJWK returns the kid and key of an Ed25519 signing JWK, a nil key for a
// JWK of any other kind, and an error describing a malformed Ed25519 JWK.
func parseJWK(raw json.RawMessage) (string, ed25519.PublicKey, error) {
	var k jwk
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", nil, err
	}
	if k.Kty != "OKP" || k.Crv != "Ed25519" ||
		(k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != algEdDSA) {
		return "", nil, nil
	}
	if k.D != "" {
		return "", nil, fmt.Errorf("private key published")
	}
	x, err := b64.Strict().DecodeString(k.X)
	if err != nil {
		return "", nil, fmt.Errorf("x: %v", err)
	}
	if len(x) != ed25519.PublicKeySize {
		return "", nil, fmt.Errorf("x is %d bytes, want %d", len(x), ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(x)
	if k.Kid == "" {
		k.Kid = KeyID(pub)
	}
	return k.Kid, pub, nil
}
