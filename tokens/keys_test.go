package tokens_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/tokens"
)

func TestKeyIDRFC8037(t *testing.T) {
	// RFC 8037 Appendix A.3: the thumbprint of the Appendix A.2 public key.
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokens.KeyID(ed25519.PublicKey(x)), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("KeyID = %q, want %q", got, want)
	}
}

func TestPrivateKeyPEMRoundTrip(t *testing.T) {
	key := mustKey(t)
	pemBytes, err := tokens.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatalf("MarshalPrivateKeyPEM: %v", err)
	}
	if got, want := strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----\n"), true; got != want {
		t.Fatalf("PEM starts %q, want a PRIVATE KEY block", pemBytes[:30])
	}
	got, err := tokens.ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		t.Fatalf("ParsePrivateKeyPEM: %v", err)
	}
	if !got.Equal(key) {
		t.Fatal("ParsePrivateKeyPEM(MarshalPrivateKeyPEM(k)) != k")
	}
	pubs, err := tokens.ParsePublicKeysPEM(pemBytes)
	if err != nil {
		t.Fatalf("ParsePublicKeysPEM(private key): %v", err)
	}
	if got, want := len(pubs), 1; got != want || !pubs[0].Equal(pub(key)) {
		t.Fatalf("ParsePublicKeysPEM(private key) = %d keys, want %d, the key's public half", got, want)
	}
}

func TestParseOpenSSLKeys(t *testing.T) {
	priv, err := tokens.ParsePrivateKeyPEM(readTestdata(t, "ed25519.pem"))
	if err != nil {
		t.Fatalf("ParsePrivateKeyPEM: %v", err)
	}
	doc := append(readTestdata(t, "ed25519.pub.pem"), readTestdata(t, "ed25519.pem")...)
	doc = append(doc, mustPEM(t, mustKey(t))...)
	pubs, err := tokens.ParsePublicKeysPEM(doc)
	if err != nil {
		t.Fatalf("ParsePublicKeysPEM: %v", err)
	}
	if got, want := len(pubs), 3; got != want {
		t.Fatalf("ParsePublicKeysPEM found %d keys, want %d", got, want)
	}
	for n, k := range pubs[:2] {
		if !k.Equal(pub(priv)) {
			t.Fatalf("public key %d is not the public half of ed25519.pem", n)
		}
	}
}

func mustPEM(tb testing.TB, k ed25519.PrivateKey) []byte {
	tb.Helper()
	b, err := tokens.MarshalPrivateKeyPEM(k)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParsePrivateKeyPEMRefuses(t *testing.T) {
	tests := []struct {
		name    string
		pem     []byte
		mention string // what the error must name
	}{
		{"RSA PKCS#8", readTestdata(t, "rsa.pem"), "RSA"},
		{"RSA PKCS#1", readTestdata(t, "rsa-pkcs1.pem"), "RSA"},
		{"ECDSA PKCS#8", readTestdata(t, "ecdsa.pem"), "ECDSA"},
		{"ECDSA SEC 1", readTestdata(t, "ecdsa-sec1.pem"), "ECDSA"},
		{"X25519", readTestdata(t, "x25519.pem"), "X25519"},
		{"public key", readTestdata(t, "ed25519.pub.pem"), "PUBLIC KEY"},
		{"empty", nil, "no PEM block"},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"corrupt DER", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "bad key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokens.ParsePrivateKeyPEM(tt.pem)
			if got, want := errors.Is(err, tokens.ErrKey), true; got != want {
				t.Fatalf("ParsePrivateKeyPEM error %v: errors.Is(err, ErrKey) = %v, want %v", err, got, want)
			}
			if got, want := strings.Contains(err.Error(), tt.mention), true; got != want {
				t.Fatalf("error %q mentions %q: %v, want %v", err, tt.mention, got, want)
			}
		})
	}
}

func TestParsePublicKeysPEMRefuses(t *testing.T) {
	ed := readTestdata(t, "ed25519.pub.pem")
	tests := []struct {
		name    string
		pem     []byte
		mention string
	}{
		{"RSA public key", readTestdata(t, "rsa.pub.pem"), "RSA"},
		{"RSA private key", readTestdata(t, "rsa.pem"), "RSA"},
		{"ECDSA private key", readTestdata(t, "ecdsa.pem"), "ECDSA"},
		{"Ed25519 then RSA", append(append([]byte{}, ed...), readTestdata(t, "rsa.pub.pem")...), "block 2"},
		{"certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "CERTIFICATE"},
		{"empty", nil, "no PEM block"},
		{"not PEM", []byte("ssh-ed25519 AAAA"), "no PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokens.ParsePublicKeysPEM(tt.pem)
			if got, want := errors.Is(err, tokens.ErrKey), true; got != want {
				t.Fatalf("ParsePublicKeysPEM error %v: errors.Is(err, ErrKey) = %v, want %v", err, got, want)
			}
			if got, want := strings.Contains(err.Error(), tt.mention), true; got != want {
				t.Fatalf("error %q mentions %q: %v, want %v", err, tt.mention, got, want)
			}
		})
	}
}

func TestMarshalPrivateKeyPEMRefusesShortKey(t *testing.T) {
	_, err := tokens.MarshalPrivateKeyPEM(mustKey(t)[:32])
	if got, want := errors.Is(err, tokens.ErrKey), true; got != want {
		t.Fatalf("MarshalPrivateKeyPEM(short) error %v: errors.Is(err, ErrKey) = %v, want %v", err, got, want)
	}
}
