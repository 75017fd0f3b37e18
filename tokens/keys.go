package tokens

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrKey is wrapped by every error about key material: a PEM document that
// does not hold an Ed25519 key, a key of the wrong size, a JWKS without a
// usable key, or an OTP secret that is too short. The message names what was
// found instead.
var ErrKey = errors.New("tokens: bad key")

// PEM block types this package reads and writes.
const (
	pemPrivateKey = "PRIVATE KEY" // PKCS#8
	pemPublicKey  = "PUBLIC KEY"  // PKIX
)

// GenerateKey returns a new Ed25519 private key drawn from crypto/rand. It
// returns an error only if the system's random source fails.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tokens: generate key: %w", err)
	}
	return priv, nil
}

// ParsePrivateKeyPEM returns the Ed25519 private key in the first PEM block of
// pemBytes, which must be a PKCS#8 "PRIVATE KEY" block. Anything else (no PEM
// block, an RSA, ECDSA or X25519 key, a PKCS#1 or SEC 1 block, an encrypted
// key) gives an error wrapping ErrKey that names what was found.
func ParsePrivateKeyPEM(pemBytes []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrKey)
	}
	return parsePrivateBlock(block)
}

// ParsePublicKeysPEM returns the Ed25519 public keys of all PEM blocks in
// pemBytes, in order. A block is either a PKIX "PUBLIC KEY" or a PKCS#8
// "PRIVATE KEY", of which only the public half is kept, so the signing key's
// file can be listed among the verification keys. Input without any PEM
// block, or with a block that is not an Ed25519 key, gives an error wrapping
// ErrKey.
func ParsePublicKeysPEM(pemBytes []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		pub, err := parsePublicBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", len(keys)+1, err)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no PEM block found", ErrKey)
	}
	return keys, nil
}

// MarshalPrivateKeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block, the
// format ParsePrivateKeyPEM reads. A key of the wrong size gives an error
// wrapping ErrKey.
func MarshalPrivateKeyPEM(k ed25519.PrivateKey) ([]byte, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: Ed25519 private key is %d bytes, want %d", ErrKey, len(k), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// MarshalPublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block, the
// format ParsePublicKeysPEM reads (ARBITER_VERIFY_KEYS). A key of the wrong
// size gives an error wrapping ErrKey.
func MarshalPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Ed25519 public key is %d bytes, want %d", ErrKey, len(pub), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// KeyID returns the RFC 7638 JWK thumbprint of pub: the unpadded base64url
// SHA-256 of its canonical JWK {"crv":"Ed25519","kty":"OKP","x":"..."}. It is
// the "kid" of every token signed with the matching private key. Equal keys
// always give equal ids.
func KeyID(pub ed25519.PublicKey) string {
	// The canonical JWK has its members in lexical order and no whitespace;
	// x is base64url and needs no JSON escaping, so plain concatenation is exact.
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return b64.EncodeToString(sum[:])
}

// b64 is the base64url alphabet without padding used by JOSE (RFC 7515 §2).
var b64 = base64.RawURLEncoding

func parsePrivateBlock(block *pem.Block) (ed25519.PrivateKey, error) {
	switch block.Type {
	case pemPrivateKey:
	case "RSA PRIVATE KEY":
		return nil, fmt.Errorf("%w: RSA key (PKCS#1): only Ed25519 is accepted", ErrKey)
	case "EC PRIVATE KEY":
		return nil, fmt.Errorf("%w: ECDSA key (SEC 1): only Ed25519 is accepted", ErrKey)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: encrypted PKCS#8 key: only unencrypted Ed25519 is accepted", ErrKey)
	default:
		return nil, fmt.Errorf("%w: PEM block %q: want %q", ErrKey, block.Type, pemPrivateKey)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("%w: %s key: only Ed25519 is accepted", ErrKey, keyKind(k))
	}
}

func parsePublicBlock(block *pem.Block) (ed25519.PublicKey, error) {
	switch block.Type {
	case pemPublicKey:
	case pemPrivateKey, "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		priv, err := parsePrivateBlock(block)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	case "RSA PUBLIC KEY":
		return nil, fmt.Errorf("%w: RSA public key (PKCS#1): only Ed25519 is accepted", ErrKey)
	default:
		return nil, fmt.Errorf("%w: PEM block %q: want %q or %q", ErrKey, block.Type, pemPublicKey, pemPrivateKey)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s public key: only Ed25519 is accepted", ErrKey, keyKind(key))
	}
	return pub, nil
}

// keyKind names a key's algorithm for error messages.
func keyKind(key any) string {
	switch key.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return "ECDSA"
	case *ecdh.PrivateKey, *ecdh.PublicKey:
		return "ECDH (X25519)"
	default:
		return fmt.Sprintf("%T", key)
	}
}
