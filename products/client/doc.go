// Package client is the Go client of the arbiter API, for the product
// services that ask arbiter for checks and redeem its approvals.
//
// A Client is safe for concurrent use and every method takes a context.
// Create one per arbiter with New, giving the base URL, this service's API
// key and, to verify approval tokens, its client id at arbiter:
//
//	arb, err := client.New(client.Config{
//		BaseURL:  "http://127.0.0.1:8080",
//		APIKey:   os.Getenv("ARBITER_KEY"),
//		ClientID: "card-service",
//	})
//
// Over HTTPS, Config.TLSConfig gives the CA that verifies arbiter and, for
// mutual TLS, this service's client certificate; when arbiter's clients
// file names that certificate (cert_names), it may stand in for the API key.
//
// # Refusals
//
// Every answer of arbiter that is not a success is an *Error carrying the
// problem document: its Reason, the HTTP status, the plain-words Detail and
// the details a caller acts on (the held product and its expiry for
// hold_exists, the products in the way for conflicting_product, attempts left
// for otp_invalid, Retry-After). Compare with errors.Is against the package's
// sentinels, one per reason, never against strings:
//
//	_, err := arb.Check(ctx, client.CheckRequest{CustomerID: "C-1", Product: "credit_card"})
//	var e *client.Error
//	switch {
//	case errors.Is(err, client.ErrHoldExists) && errors.As(err, &e):
//		// another application is in progress: e.HeldProduct until e.HeldUntil
//	case errors.Is(err, client.ErrConflictingProduct):
//		// the customer holds a product that excludes this one
//	}
//
// # Retries
//
// Calls are retried with exponential backoff and jitter on network errors,
// 503 and 429, but only where a repeat cannot do anything twice: reads;
// Check, which always carries an Idempotency-Key (one is generated when the
// caller gives none) so arbiter replays a hold it placed (a refusal is
// decided again); and Redeem, which arbiter makes idempotent for the client
// that redeemed, while the grant lives. Cancel and Release
// are retried only when the request surely never left (the connection was
// refused) or arbiter answered 503; a retry that finds the work done returns
// ErrCheckNotHeld or ErrGrantNotFound, which cleanup code may treat as done.
//
// A retry is never slept on past the call's budget: a 429 or 503 whose
// Retry-After exceeds Config.MaxBackoff (an OTP rate limit asks for an
// hour), or whose pause would reach the context's deadline or, when
// redeeming a token, the expiry of its hold, is returned at once with
// Error.RetryAfter set, so the caller sees the real refusal and not the
// hold_expired a late retry would meet.
//
// # Approval tokens
//
// VerifyToken checks an approval token offline against arbiter's JWKS: the
// algorithm is pinned to EdDSA, the audience must be this service's client
// id, the issuer must match, and exp, nbf and iat must hold. Keys are cached;
// a token signed with an unknown kid makes the client fetch the JWKS again
// (at most once per KeyRefreshInterval, so forged kids cannot flood arbiter),
// which is how a key rotation reaches product services without a restart.
// Verification is a cheap first refusal of forged and expired tokens; it is
// not a redemption, and only Redeem makes a hold the customer's product.
//
// # Tracing
//
// With Config.TracerProvider set, every request to arbiter is a client span
// (OpenTelemetry's otelhttp) under the caller's span, named after the
// call's URL template ("POST /v1/checks"), and its context goes to arbiter
// as a W3C traceparent, so arbiter's server span joins the caller's trace.
// url.full holds the template too: customer and check ids, codes, tokens
// and keys never become span attributes. Without it the HTTP client is
// used as given.
//
// The JWKS is read with package tokens of this module (tokens.Verifier); the
// client otherwise speaks to arbiter over HTTP only.
package client
