package tokens

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrTokenInvalid is wrapped by every verification failure: the message adds
// a short fixed reason ("expired", "unknown key id", ...) for logs, and
// callers compare with errors.Is only.
var ErrTokenInvalid = errors.New("tokens: invalid token")

// wrongAudienceDetail is Detail's sentence for ErrWrongAudience.
const wrongAudienceDetail = "the token is for another audience: it was not issued to this client"

// ErrWrongAudience is returned when a token is otherwise acceptable to parse
// but was not issued for the audience asked of Verify (or no audience was
// asked). It wraps ErrTokenInvalid, so errors.Is(err, ErrTokenInvalid) holds
// for it too.
var ErrWrongAudience = fmt.Errorf("%w: wrong audience", ErrTokenInvalid)

// Defaults of IssuerConfig (and of a Verifier built from a JWKS).
const (
	defaultIssuer = "arbiter"
	defaultLeeway = 5 * time.Second
	// tokenType is the "typ" header of approval tokens (RFC 8725 §3.11), so
	// that no other JWT signed by the same key can pass for an approval.
	tokenType = "arbiter-approval+jwt"
	algEdDSA  = "EdDSA"
)

// Claims are the claims of an approval token. Times travel as JWT NumericDate
// and so are truncated to whole seconds; Verify returns them in UTC.
type Claims struct {
	CheckID    string    // "jti": the check the hold belongs to
	CustomerID string    // "sub": the customer holding the product
	Product    string    // "product": the held product
	Fence      int64     // "fence": the hold's fencing token, always > 0
	Audience   []string  // "aud": the client ids allowed to redeem the token
	IssuedAt   time.Time // "iat", and also "nbf"
	ExpiresAt  time.Time // "exp": the hold's expiry
	// Secret ("hs", optional) is the check's token secret, which arbiter
	// compares with the digest its check keeps so that it need not verify
	// its own signature again at redemption (Issuer.ParseOwn). It is
	// opaque to everyone else: verifying a token offline ignores it.
	Secret string
	// PolicyVersion ("policy_version", optional) is the policy version the
	// check was decided under.
	PolicyVersion string
}

// HasAudience reports whether id is one of c's audiences.
func (c Claims) HasAudience(id string) bool {
	return slices.Contains(c.Audience, id)
}

// validate reports why c cannot be signed: a token that no Verifier would
// accept is a bug at the caller, better found at signing time.
func (c Claims) validate() error {
	switch {
	case c.CheckID == "":
		return errors.New("tokens: sign: empty CheckID")
	case c.CustomerID == "":
		return errors.New("tokens: sign: empty CustomerID")
	case c.Product == "":
		return errors.New("tokens: sign: empty Product")
	case c.Fence <= 0:
		return errors.New("tokens: sign: Fence must be > 0")
	case len(c.Audience) == 0 || slices.Contains(c.Audience, ""):
		return errors.New("tokens: sign: Audience must list at least one non-empty client id")
	case c.IssuedAt.IsZero() || c.ExpiresAt.IsZero():
		return errors.New("tokens: sign: IssuedAt and ExpiresAt are required")
	case !c.ExpiresAt.After(c.IssuedAt):
		return errors.New("tokens: sign: ExpiresAt must be after IssuedAt")
	}
	return nil
}

// wireClaims is the JSON form of Claims. Its field order, with that of
// jwt.RegisteredClaims, fixes the byte layout of the payload, which keeps
// signing deterministic.
type wireClaims struct {
	jwt.RegisteredClaims
	Product string `json:"product,omitempty"`
	Fence   int64  `json:"fence,omitempty"`
	Secret  string `json:"hs,omitempty"`
	// PolicyVersion comes last, so that a token without one keeps the
	// bytes it had before the claim existed.
	PolicyVersion string `json:"policy_version,omitempty"`
}

func (c Claims) wire(issuer string) wireClaims {
	return wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   c.CustomerID,
			Audience:  jwt.ClaimStrings(slices.Clone(c.Audience)),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			NotBefore: jwt.NewNumericDate(c.IssuedAt),
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ID:        c.CheckID,
		},
		Product: c.Product,
		Fence:   c.Fence,
		Secret:  c.Secret,

		PolicyVersion: c.PolicyVersion,
	}
}

func (w wireClaims) claims() Claims {
	c := Claims{
		CheckID:    w.ID,
		CustomerID: w.Subject,
		Product:    w.Product,
		Fence:      w.Fence,
		Audience:   []string(w.Audience),
		Secret:     w.Secret,

		PolicyVersion: w.PolicyVersion,
	}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.UTC()
	} else if w.NotBefore != nil {
		c.IssuedAt = w.NotBefore.UTC()
	}
	if w.ExpiresAt != nil {
		c.ExpiresAt = w.ExpiresAt.UTC()
	}
	return c
}

// IssuerConfig configures an Issuer. The zero value of every field but Key
// means "use the default".
type IssuerConfig struct {
	// Key signs tokens. Required.
	Key ed25519.PrivateKey
	// Issuer is the "iss" claim written and required; "" means "arbiter".
	Issuer string
	// VerifyKeys are older public keys whose tokens are still accepted and
	// which are still published in the JWKS, so tokens outlive a key rotation.
	VerifyKeys []ed25519.PublicKey
	// Now is the clock Verify checks exp, nbf and iat against; nil means
	// time.Now. Sign never reads the clock: times come from the Claims.
	Now func() time.Time
	// Leeway is the clock skew tolerated on exp, nbf and iat; 0 means 5s.
	Leeway time.Duration
}

// Issuer signs approval tokens with one Ed25519 key and verifies them against
// that key and the configured older keys. It is safe for concurrent use.
// Create it with NewIssuer.
type Issuer struct {
	key      ed25519.PrivateKey
	kid      string
	header   string // encodedHeader(kid)
	jwks     []byte
	verifier *Verifier
}

// NewIssuer returns an Issuer for cfg. It returns an error wrapping ErrKey if
// cfg.Key or one of cfg.VerifyKeys is missing or of the wrong size, and an
// error if cfg.Leeway is negative.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: signing key is %d bytes, want an Ed25519 private key of %d", ErrKey, len(cfg.Key), ed25519.PrivateKeySize)
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("tokens: negative leeway %v", cfg.Leeway)
	}
	pub := cfg.Key.Public().(ed25519.PublicKey)
	keys := []ed25519.PublicKey{pub}
	for n, k := range cfg.VerifyKeys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: VerifyKeys[%d] is %d bytes, want %d", ErrKey, n, len(k), ed25519.PublicKeySize)
		}
		if !slices.ContainsFunc(keys, func(have ed25519.PublicKey) bool { return have.Equal(k) }) {
			keys = append(keys, slices.Clone(k))
		}
	}
	jwks, err := marshalJWKS(keys)
	if err != nil {
		return nil, err
	}
	kid := KeyID(pub)
	header, err := encodedHeader(kid)
	if err != nil {
		return nil, err
	}
	return &Issuer{
		key:      slices.Clone(cfg.Key),
		kid:      kid,
		header:   header,
		jwks:     jwks,
		verifier: newVerifier(cfg.Issuer, keys, cfg.Now, cfg.Leeway),
	}, nil
}

// Sign returns the compact JWS of c, signed with EdDSA under the Issuer's key,
// with headers "kid" (KeyID of the key) and "typ" "arbiter-approval+jwt", and
// claims iss, sub, aud (always a JSON array), exp, nbf, iat, jti, product and
// fence, hs when c has a Secret and policy_version when it has a PolicyVersion. The same Claims always give the byte-identical token. Sign returns
// an error if c could never verify: an empty CheckID, CustomerID or Product,
// a Fence not above 0, no Audience (or an empty one), a zero IssuedAt or
// ExpiresAt, or ExpiresAt not after IssuedAt.
func (i *Issuer) Sign(c Claims) (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	// What jwt.Token.SignedString makes, byte for byte, but with the
	// header encoded once per Issuer rather than once per token.
	claims, err := json.Marshal(c.wire(i.verifier.issuer))
	if err != nil {
		return "", fmt.Errorf("tokens: sign: %w", err)
	}
	enc := base64.RawURLEncoding
	b := make([]byte, 0, len(i.header)+2+enc.EncodedLen(len(claims))+enc.EncodedLen(ed25519.SignatureSize))
	b = append(append(b, i.header...), '.')
	b = enc.AppendEncode(b, claims)
	sig := ed25519.Sign(i.key, b)
	b = enc.AppendEncode(append(b, '.'), sig)
	return string(b), nil
}

// encodedHeader is the first segment of every token of the key kid: the
// JOSE header as jwt.Token encodes it (a map, so its keys sorted).
func encodedHeader(kid string) (string, error) {
	h, err := json.Marshal(map[string]any{"alg": jwt.SigningMethodEdDSA.Alg(), "kid": kid, "typ": tokenType})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(h), nil
}

// Verify checks token as Verifier.Verify does, against the Issuer's signing
// key and its VerifyKeys, its issuer name, clock and leeway.
func (i *Issuer) Verify(token, audience string) (Claims, error) {
	return i.verifier.Verify(token, audience)
}

// ParseOwn checks token as Verify does, except its signature, and returns
// its claims: for arbiter's redemption of its own tokens, when the token
// carries the check's secret (Claims.Secret), which the store compares with
// the digest the check keeps; only arbiter ever saw the secret before it
// signed, so a token with the right one is arbiter's. A token without a
// Secret is verified in full (signature included), as it must be for a
// check that keeps no digest. The header rules are Verify's: EdDSA, typ,
// no crit, and a kid naming one of the Issuer's keys, so a token no
// product service would accept is refused here too.
func (i *Issuer) ParseOwn(token, audience string) (Claims, error) {
	return i.verifier.parseOwn(token, audience)
}

// JWKS returns the JSON Web Key Set of the Issuer's public keys, the signing
// key first and then the VerifyKeys, each with its kid, "use":"sig" and
// "alg":"EdDSA". The document is computed once; each call returns a copy.
func (i *Issuer) JWKS() []byte {
	return bytes.Clone(i.jwks)
}

// KeyID returns the kid of the signing key, KeyID of its public half.
func (i *Issuer) KeyID() string {
	return i.kid
}

// IssuerName returns the "iss" the Issuer writes and requires.
func (i *Issuer) IssuerName() string {
	return i.verifier.issuer
}

// Verifier verifies approval tokens against a fixed set of Ed25519 public
// keys, without being able to sign. It is safe for concurrent use. Create it
// with NewVerifierFromJWKS; an Issuer verifies through one too.
type Verifier struct {
	issuer string
	keys   map[string]ed25519.PublicKey // by kid
	opts   []jwt.ParserOption           // all but the audience, which varies per call
}

func newVerifier(issuer string, keys []ed25519.PublicKey, now func() time.Time, leeway time.Duration) *Verifier {
	byKID := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		byKID[KeyID(k)] = k
	}
	return newVerifierKIDs(issuer, byKID, now, leeway)
}

func newVerifierKIDs(issuer string, keys map[string]ed25519.PublicKey, now func() time.Time, leeway time.Duration) *Verifier {
	if issuer == "" {
		issuer = defaultIssuer
	}
	if now == nil {
		now = time.Now
	}
	if leeway == 0 {
		leeway = defaultLeeway
	}
	return &Verifier{
		issuer: issuer,
		keys:   keys,
		opts: []jwt.ParserOption{
			jwt.WithValidMethods([]string{algEdDSA}),
			jwt.WithIssuer(issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		},
	}
}

// HasKey reports whether the Verifier accepts tokens whose "kid" is kid.
func (v *Verifier) HasKey(kid string) bool {
	_, ok := v.keys[kid]
	return ok
}

// Verify returns the claims of token if it is an approval token for audience,
// and an error wrapping ErrTokenInvalid otherwise. It accepts only: the EdDSA
// algorithm, whatever the header claims (no "none", no HMAC keyed with a
// public key, no RSA or ECDSA); a "kid" naming one of the Verifier's keys, and
// a valid signature by that key; "typ" "arbiter-approval+jwt" and no "crit"
// header; "iss" equal to the Verifier's issuer; an "exp" in the future and
// "nbf" and "iat" not in the future, each within the leeway; an "aud"
// containing audience (else the error is ErrWrongAudience); non-empty "jti",
// "sub" and "product"; and a "fence" above 0.
func (v *Verifier) Verify(token, audience string) (Claims, error) {
	if audience == "" {
		return Claims{}, ErrWrongAudience
	}
	opts := append(slices.Clip(v.opts), jwt.WithAudience(audience))
	var w wireClaims
	if tok, err := jwt.NewParser(opts...).ParseWithClaims(token, &w, v.key); err != nil {
		if tok != nil && tok.Method != nil && tok.Method.Alg() != algEdDSA {
			return Claims{}, refuse("algorithm not allowed", "the token is signed with an algorithm other than EdDSA")
		}
		return Claims{}, expiredAt(refusalOf(err), w.ExpiresAt)
	}
	return w.check()
}

// parseOwn is ParseOwn: Verify without the signature for a token with a
// secret.
func (v *Verifier) parseOwn(token, audience string) (Claims, error) {
	if audience == "" {
		return Claims{}, ErrWrongAudience
	}
	var w wireClaims
	p := jwt.NewParser(v.opts...)
	tok, _, err := p.ParseUnverified(token, &w)
	if err != nil {
		return Claims{}, refusalOf(err)
	}
	if w.Secret == "" {
		return v.Verify(token, audience)
	}
	if tok.Method == nil || tok.Method.Alg() != algEdDSA {
		return Claims{}, refuse("algorithm not allowed", "the token is signed with an algorithm other than EdDSA")
	}
	if _, err := v.key(tok); err != nil {
		return Claims{}, err
	}
	opts := append(slices.Clip(v.opts), jwt.WithAudience(audience))
	if err := jwt.NewValidator(opts...).Validate(&w); err != nil {
		return Claims{}, expiredAt(refusalOf(err), w.ExpiresAt)
	}
	return w.check()
}

// check returns the claims of a token whose registered claims are valid,
// unless arbiter's own claims are missing.
func (w *wireClaims) check() (Claims, error) {
	c := w.claims()
	switch {
	case c.CheckID == "":
		return Claims{}, refuse("missing jti", "the token names no check (jti)")
	case c.CustomerID == "":
		return Claims{}, refuse("missing sub", "the token names no customer (sub)")
	case c.Product == "":
		return Claims{}, refuse("missing product", "the token names no product")
	case c.Fence <= 0:
		return Claims{}, refuse("fence not above 0", "the token's fence is not above 0")
	}
	return c, nil
}

// key is the jwt.Keyfunc: it checks the header and picks the key by kid. The
// parser has already refused any algorithm but EdDSA when it calls key.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); typ != tokenType {
		return nil, refuse("wrong typ", "the token is not an approval token (its typ header)")
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, refuse("unsupported crit header", "the token has a crit header, which is not supported")
	}
	kid, _ := t.Header["kid"].(string)
	k, ok := v.keys[kid]
	if !ok {
		return nil, refuse("unknown key id", "the token is signed with a key this service does not know (its kid)")
	}
	return k, nil
}

// refusal is a verification failure with a fixed, short reason for logs
// and a sentence for the client that sent the token (Detail). Neither
// quotes the token, which is attacker-controlled input.
type refusal struct{ reason, detail string }

func refuse(reason, detail string) error { return &refusal{reason, detail} }

func (r *refusal) Error() string { return ErrTokenInvalid.Error() + ": " + r.reason }
func (r *refusal) Unwrap() error { return ErrTokenInvalid }

// jwtReasons maps the jwt package's errors to refusals, first match wins.
// The parser joins claim errors, so one token may match several.
var jwtReasons = []struct {
	jwtErr error
	err    error
}{
	{jwt.ErrTokenMalformed, refuse("malformed", "the token is not a well-formed JWT")},
	{jwt.ErrTokenSignatureInvalid, refuse("bad signature", "the token's signature does not verify")},
	{jwt.ErrTokenUnverifiable, refuse("unverifiable", "the token's signature cannot be verified")},
	{jwt.ErrTokenInvalidAudience, ErrWrongAudience},
	{jwt.ErrTokenExpired, refuse("expired", "the token expired")},
	{jwt.ErrTokenNotValidYet, refuse("not valid yet", "the token is not valid yet (its nbf)")},
	{jwt.ErrTokenUsedBeforeIssued, refuse("issued in the future", "the token's issue time (iat) is in the future")},
	{jwt.ErrTokenInvalidIssuer, refuse("wrong issuer", "the token was issued by another issuer")},
	{jwt.ErrTokenRequiredClaimMissing, refuse("missing required claim", "the token lacks a required claim")},
}

// Detail returns a sentence saying why err refused a token, for the client
// that sent it: plain words that name no Go package (unlike err.Error(),
// which is for logs) and never quote the token. For an error that refused
// no token it returns a general sentence.
func Detail(err error) string {
	var r *refusal
	switch {
	case errors.As(err, &r):
		return r.detail
	case errors.Is(err, ErrWrongAudience):
		return wrongAudienceDetail
	}
	return "the token is not a valid approval token"
}

// expiredAt is the refusal of a token that expired at exp (the exp claim,
// when the token had one), so the client learns when.
func expiredAt(err error, exp *jwt.NumericDate) error {
	var r *refusal
	if exp == nil || !errors.As(err, &r) || r.reason != "expired" {
		return err
	}
	return refuse(r.reason, "the token expired at "+exp.UTC().Format(time.RFC3339))
}

// refusalOf turns a jwt parse error into an error wrapping ErrTokenInvalid.
func refusalOf(err error) error {
	var r *refusal
	if errors.As(err, &r) { // from key: the header was refused
		return r
	}
	for _, m := range jwtReasons {
		if errors.Is(err, m.jwtErr) {
			return m.err
		}
	}
	return refuse("invalid", "the token is not a valid approval token")
}
