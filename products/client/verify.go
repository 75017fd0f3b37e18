package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
)

// Claims are the verified claims of an approval token.
type Claims struct {
	CheckID    string    // "jti": the check whose hold the token redeems
	CustomerID string    // "sub"
	Product    string    // "product"
	Fence      int64     // "fence": the hold's fencing token, increasing per customer
	Audience   []string  // "aud": the client ids allowed to redeem it
	IssuedAt   time.Time // "iat"
	ExpiresAt  time.Time // "exp": the hold's expiry
}

// VerifyToken verifies an approval token offline, against arbiter's JWKS,
// and returns its claims. It accepts only EdDSA signatures by a key of the
// JWKS, the approval token type, Config.Issuer as "iss", Config.ClientID
// among the audiences, and exp, nbf and iat that hold now (5s leeway). Every
// refusal is an *Error with Reason token_invalid (errors.Is(err,
// ErrTokenInvalid)) and Status 0; a JWKS that cannot be fetched is returned
// as the fetch's error. The first call, and a token with an unknown kid,
// fetch the JWKS (see Config.KeyRefreshInterval).
func (c *Client) VerifyToken(ctx context.Context, token string) (Claims, error) {
	if c.cfg.ClientID == "" {
		return Claims{}, errors.New("client: VerifyToken needs Config.ClientID, the audience to require")
	}
	kid, err := keyID(token)
	if err != nil {
		return Claims{}, tokenRefusal(err)
	}
	v, err := c.keys.verifier(ctx, kid)
	if err != nil {
		return Claims{}, err
	}
	cl, err := v.Verify(token, c.cfg.ClientID)
	if err != nil {
		return Claims{}, tokenRefusal(err)
	}
	return Claims{
		CheckID: cl.CheckID, CustomerID: cl.CustomerID, Product: cl.Product, Fence: cl.Fence,
		Audience: cl.Audience, IssuedAt: cl.IssuedAt, ExpiresAt: cl.ExpiresAt,
	}, nil
}

func tokenRefusal(err error) *Error {
	return &Error{Op: "verify token", Reason: ReasonTokenInvalid, Detail: "the approval token is not valid for this service", Err: err}
}

// keyID returns the "kid" of a compact JWS without verifying anything.
func keyID(token string) (string, error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(head) > 1024 {
		return "", errors.New("malformed token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", errors.New("malformed token header")
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.Kid == "" {
		return "", errors.New("token header without kid")
	}
	return h.Kid, nil
}

// tokenExpiry is a token's "exp", read without verifying the token (zero
// when it has none or is not a JWT): it only bounds this client's own
// retries of a redemption, which arbiter decides on the verified token.
func tokenExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 8192 {
		return time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(claims.Exp, 0)
}

// keyCache holds the verifier built from the last JWKS fetched. It fetches
// again when the keys are older than KeyMaxAge, or when a token names an
// unknown kid and the last fetch is older than KeyRefreshInterval. One fetch
// runs at a time; concurrent callers wait for it.
type keyCache struct {
	c *Client

	mu        sync.Mutex
	v         *tokens.Verifier
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last fetch attempt
}

func (k *keyCache) verifier(ctx context.Context, kid string) (*tokens.Verifier, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.c.cfg.Now()
	stale := k.v == nil || now.Sub(k.fetchedAt) >= k.c.cfg.KeyMaxAge
	if !stale && k.v.HasKey(kid) {
		return k.v, nil
	}
	if k.v != nil && now.Sub(k.triedAt) < k.c.cfg.KeyRefreshInterval {
		return k.v, nil // refreshed moments ago: an unknown kid stays unknown
	}
	k.triedAt = now
	v, err := k.fetch(ctx)
	if err != nil {
		if k.v != nil {
			return k.v, nil // keep verifying with the old keys while arbiter is away
		}
		return nil, err
	}
	k.v, k.fetchedAt = v, now
	return v, nil
}

func (k *keyCache) fetch(ctx context.Context) (*tokens.Verifier, error) {
	req, err := http.NewRequestWithContext(k.c.withRoute(ctx, "fetch jwks"), http.MethodGet, k.c.base.String()+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, &netError{op: "fetch jwks", err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return nil, &netError{op: "fetch jwks", err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Op: "fetch jwks", Status: resp.StatusCode, Reason: ReasonUnexpected, Detail: "JWKS not served"}
	}
	v, err := tokens.NewVerifierFromJWKS(body, k.c.cfg.Issuer, k.c.cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("arbiter: fetch jwks: %w", err)
	}
	return v, nil
}
