package client

import (
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config.
const (
	DefaultIssuer             = "arbiter"
	DefaultTimeout            = 10 * time.Second
	DefaultMaxAttempts        = 4
	DefaultRetryBackoff       = 50 * time.Millisecond
	DefaultMaxBackoff         = 2 * time.Second
	DefaultKeyRefreshInterval = 10 * time.Second
	DefaultKeyMaxAge          = 5 * time.Minute
)

// Config configures a Client. BaseURL and APIKey are required; the zero
// value of every other field means "use the default".
type Config struct {
	// BaseURL is arbiter's base URL, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// APIKey is this service's API key at arbiter (sent as a Bearer token).
	// It may be empty when TLSConfig presents a client certificate that
	// identifies the service (the clients file's cert_names).
	APIKey string
	// TLSConfig configures HTTPS to arbiter for the default HTTPClient: the
	// CA that verifies arbiter (RootCAs) and this service's client
	// certificate (Certificates or GetClientCertificate). Ignored when
	// HTTPClient is set; default: the system's roots, no client certificate.
	TLSConfig *tls.Config
	// ClientID is this service's client id at arbiter: the audience that
	// VerifyToken requires of approval tokens. Required by VerifyToken only.
	ClientID string
	// Issuer is the "iss" VerifyToken requires; default "arbiter".
	Issuer string
	// HTTPClient sends the requests; default an http.Client with a 10s timeout.
	HTTPClient *http.Client
	// MaxAttempts bounds the tries of one call, the first included; default 4.
	// 1 disables retries.
	MaxAttempts int
	// RetryBackoff is the first pause between tries, doubled at each retry
	// with full jitter; default 50ms.
	RetryBackoff time.Duration
	// MaxBackoff caps one pause; default 2s. An answer whose Retry-After
	// asks for more (an OTP rate limit says an hour) is returned at once,
	// not retried, and so is one whose pause would reach the context's
	// deadline or, for a token's redemption, the hold's expiry.
	MaxBackoff time.Duration
	// KeyRefreshInterval is the least time between two JWKS fetches caused by
	// unknown key ids; default 10s.
	KeyRefreshInterval time.Duration
	// KeyMaxAge is how long fetched keys are used before the JWKS is read
	// again; default 5m.
	KeyMaxAge time.Duration
	// Now is the clock token expiry is checked against; default time.Now.
	Now func() time.Time
	// TracerProvider, when set, traces every request to arbiter
	// (OpenTelemetry, otelhttp): a client span per try, named after the
	// call's URL template, whose context goes to arbiter as a W3C
	// traceparent. Spans carry no customer id: url.full is the template.
	// nil, the default, leaves HTTPClient as it is.
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context into requests; default W3C trace
	// context and baggage.
	Propagator propagation.TextMapPropagator
}

// Client calls one arbiter. It is safe for concurrent use.
type Client struct {
	base *url.URL
	cfg  Config
	keys *keyCache
}

// New returns a Client for cfg, or an error if BaseURL is not an absolute
// http(s) URL or APIKey is empty.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.APIKey == "" && !presentsCert(cfg.TLSConfig) {
		return nil, errors.New("client: APIKey is required unless TLSConfig presents a client certificate")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultTimeout}
		if cfg.TLSConfig != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = cfg.TLSConfig.Clone()
			cfg.HTTPClient.Transport = tr
		}
	}
	if cfg.TracerProvider != nil {
		cfg.HTTPClient = traced(cfg.HTTPClient, cfg.TracerProvider, cfg.Propagator)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.KeyRefreshInterval <= 0 {
		cfg.KeyRefreshInterval = DefaultKeyRefreshInterval
	}
	if cfg.KeyMaxAge <= 0 {
		cfg.KeyMaxAge = DefaultKeyMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{base: u, cfg: cfg}
	c.keys = &keyCache{c: c}
	return c, nil
}

// presentsCert reports whether tc offers a client certificate.
func presentsCert(tc *tls.Config) bool {
	return tc != nil && (len(tc.Certificates) > 0 || tc.GetClientCertificate != nil)
}

// retryPolicy says which failures a call may repeat.
type retryPolicy int

const (
	// retrySafe: the call is idempotent; retry network errors, 503 and 429.
	retrySafe retryPolicy = iota
	// retryUnsent: retry only when the request surely did not run (the
	// connection was refused) or arbiter answered 503 or 429.
	retryUnsent
)

// request is one API call.
type request struct {
	op     string
	method string
	path   string // already escaped
	body   any    // JSON-encoded; a []byte is sent as it is, with contentType
	// contentType of a []byte body; default application/json.
	contentType string
	header      http.Header
	retry       retryPolicy
	// notAfter, when set, is when a retry stops being useful: the end of
	// the hold a redemption's token names. No try is started after it.
	notAfter time.Time
}

// response is a successful answer: 2xx.
type response struct {
	status int
	header http.Header
}

// do sends r, retrying as its policy allows, and decodes a 2xx body into out
// (when out is not nil). Any other answer is an *Error. A retry whose pause
// would outlast the call's budget is not made: see retryPause.
func (c *Client) do(ctx context.Context, r request, out any) (response, error) {
	var body []byte
	if raw, ok := r.body.([]byte); ok {
		body = raw
	} else if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return response{}, fmt.Errorf("arbiter: %s: %w", r.op, err)
		}
		body = b
	}
	for attempt := 1; ; attempt++ {
		resp, wait, err := c.once(ctx, r, body, out)
		var d time.Duration
		retry := err != nil && attempt < c.cfg.MaxAttempts && c.retryable(r.retry, err)
		if retry {
			d, retry = c.retryPause(ctx, r, attempt, wait)
		}
		if !retry {
			var e *Error
			if attempt > 1 && errors.As(err, &e) {
				e.Retried = true
			}
			return resp, err
		}
		if perr := sleep(ctx, d); perr != nil {
			return resp, fmt.Errorf("arbiter: %s: gave up after %d tries: %w (last error: %w)", r.op, attempt, perr, err)
		}
	}
}

// once sends one try. wait is the server's Retry-After, if any.
func (c *Client) once(ctx context.Context, r request, body []byte, out any) (response, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.withRoute(ctx, r.op), r.method, c.base.String()+r.path, rd)
	if err != nil {
		return response{}, 0, fmt.Errorf("arbiter: %s: %w", r.op, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", cmp.Or(r.contentType, "application/json"))
	}
	hr, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return response{}, 0, &netError{op: r.op, err: err}
	}
	defer hr.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hr.Body, 1<<20))
	if err != nil {
		return response{}, 0, &netError{op: r.op, err: err}
	}
	resp := response{status: hr.StatusCode, header: hr.Header}
	if hr.StatusCode >= 200 && hr.StatusCode < 300 {
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return resp, 0, &Error{Op: r.op, Status: hr.StatusCode, Reason: ReasonUnexpected, Detail: "undecodable body", Err: err}
			}
		}
		return resp, 0, nil
	}
	retryAfter := parseRetryAfter(hr.Header.Get("Retry-After"), c.cfg.Now())
	var p problem
	_ = json.Unmarshal(data, &p) // a body that is not a problem becomes ReasonUnexpected
	e := p.err(r.op, hr.StatusCode, retryAfter)
	if p.Reason == "" && hr.StatusCode == http.StatusServiceUnavailable {
		e.Reason = ReasonUnavailable
	}
	return resp, retryAfter, e
}

// netError is a failure to get any HTTP answer.
type netError struct {
	op  string
	err error
}

func (e *netError) Error() string { return "arbiter: " + e.op + ": " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// retryable reports whether err may be retried under policy p.
func (c *Client) retryable(p retryPolicy, err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests
	}
	var ne *netError
	if !errors.As(err, &ne) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if p == retrySafe {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryPause returns the pause before retry number attempt — full jitter
// over an exponential backoff, at least the server's Retry-After, at most
// MaxBackoff — and whether to retry at all. It does not when the server
// asks for a longer wait than MaxBackoff (otp_rate_limited says an hour:
// its 429 is the answer, not something to sleep on), nor when the pause
// would reach the context's deadline or r.notAfter (the hold would be gone
// by then, and a late retry would only report hold_expired instead of the
// real refusal).
func (c *Client) retryPause(ctx context.Context, r request, attempt int, retryAfter time.Duration) (time.Duration, bool) {
	if retryAfter > c.cfg.MaxBackoff {
		return 0, false
	}
	d := c.cfg.RetryBackoff << (attempt - 1)
	if d > c.cfg.MaxBackoff || d <= 0 {
		d = c.cfg.MaxBackoff
	}
	d = max(time.Duration(rand.Int64N(int64(d))+1), min(retryAfter, c.cfg.MaxBackoff))
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
		return 0, false
	}
	if !r.notAfter.IsZero() && !c.cfg.Now().Add(d).Before(r.notAfter) {
		return 0, false
	}
	return d, true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxRetryAfter bounds a parsed Retry-After, so that no header overflows a
// Duration; any wait that long is refused by retryPause anyway.
const maxRetryAfter = 365 * 24 * time.Hour

// parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3): a number
// of seconds, or an HTTP-date taken relative to now. A value that is
// neither, has a sign or a fraction, or is a date in the past is 0: no
// advice. A number of seconds too large for a Duration is maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || s > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

// newIdempotencyKey returns 128 random bits in hex.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = cryptoRead(b[:])
	return hex.EncodeToString(b[:])
}

var cryptoRead = crand.Read
