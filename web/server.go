package web

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

// Service is what the API needs of the domain; *validation.Service is one.
type Service interface {
	Check(ctx context.Context, actor validation.Actor, in validation.CheckInput) (validation.Check, bool, error)
	RedeemToken(ctx context.Context, actor validation.Actor, customerID, product, checkID string, proof validation.TokenProof) (validation.Grant, bool, error)
	RedeemOTP(ctx context.Context, actor validation.Actor, customerID, product, code string) (validation.Grant, bool, error)
	GetCheck(ctx context.Context, actor validation.Actor, checkID string) (validation.Check, error)
	Cancel(ctx context.Context, actor validation.Actor, checkID string) (validation.Check, error)
	Customer(ctx context.Context, customerID string) (validation.Customer, error)
	Release(ctx context.Context, actor validation.Actor, customerID, product, checkID string) (validation.Grant, error)
	Import(ctx context.Context, actor validation.Actor, customerID, product string, grantedAt time.Time) (validation.Grant, error)
	Audit(ctx context.Context, customerID string, limit int, types ...validation.EventType) ([]validation.Event, error)
	Eligibility(ctx context.Context, customerID, product string) (validation.Eligibility, error)
	Block(ctx context.Context, actor validation.Actor, customerID, reason string, until time.Time) (*validation.Check, error)
	Unblock(ctx context.Context, actor validation.Actor, customerID string) error
	Impact(ctx context.Context, actor validation.Actor, candidate *validation.Policy, opts validation.ImpactOptions) (validation.Impact, error)
}

// Tokens is what the API needs of the credential issuer; *tokens.Issuer is one.
type Tokens interface {
	Sign(c tokens.Claims) (string, error)
	// ParseOwn checks a token to redeem: everything but the signature for
	// a token carrying its check's secret, which the store compares
	// instead; the signature too for one without (tokens.Issuer.ParseOwn).
	ParseOwn(token, audience string) (tokens.Claims, error)
	JWKS() []byte
}

// Config is everything the HTTP server needs. Service, Tokens, Policy and
// Clients are required; the rest have defaults.
type Config struct {
	Service Service
	Tokens  Tokens
	Policy  *validation.Policy
	Clients *Clients
	// Ready reports whether the store is reachable (for /readyz).
	Ready func(ctx context.Context) error
	// OTPCode computes the current TOTP code of a secret; default tokens.OTPCode.
	OTPCode func(secret []byte, t time.Time) (code string, validUntil time.Time, err error)
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger     // default slog.Default()
	// RequestTimeout bounds every request, so a stalled Redis gives a quick
	// 503 rather than a hung client; default 3s.
	RequestTimeout time.Duration
	// SecureCookies marks the branch UI's session cookie Secure even when
	// the request came over plain HTTP (TLS ended at a proxy); it is always
	// Secure when the request came over TLS.
	SecureCookies bool
	// SessionIdle signs a branch agent out after this long without a
	// request; default DefaultSessionIdle (15m).
	SessionIdle time.Duration
	// Sessions keeps the branch UI's sessions and sign-in throttle; give
	// every instance the same one (redissessions.Store) so that they all
	// know every session. Default: this process's memory, where a restart
	// signs every agent out.
	Sessions SessionStore
	// ParsePolicy decodes and validates a policy file, as ARBITER_POLICY is
	// read (policyfile.Parse), for POST /v1/policy/impact; its error names
	// the line. nil: that route answers 404 not_found.
	ParsePolicy func(data []byte) (*validation.Policy, error)
	// Reconciler runs reconciliations and keeps their cases; nil: those
	// routes answer 404 not_found.
	Reconciler Reconciler
	// Registry is what /metrics serves: the API registers its own metrics
	// on it (request durations, domain outcomes, store_full refusals), beside
	// whatever the caller registered (cmd/arbiter: internal/metrics, the
	// process's). Default: a registry of the API's metrics alone.
	Registry *prometheus.Registry
	// TracerProvider traces every API request (OpenTelemetry), continuing
	// the caller's W3C traceparent; nil, the default, traces nothing and
	// installs no tracing middleware at all.
	TracerProvider trace.TracerProvider
	// Propagator reads the caller's trace context; default W3C trace
	// context and baggage.
	Propagator propagation.TextMapPropagator
}

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// Server is arbiter's HTTP handler.
type Server struct {
	cfg     Config
	echo    *echo.Echo
	full    *storeFull // store_full refusals: counted, logged per minute, shown by /readyz
	metrics *apiMetrics
}

// New returns the HTTP handler of the API.
func New(cfg Config) *Server {
	if cfg.OTPCode == nil {
		cfg.OTPCode = tokens.OTPCode
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Ready == nil {
		cfg.Ready = func(context.Context) error { return nil }
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 3 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	metrics := newAPIMetrics(cfg.Registry)
	metrics.instrument(&cfg)
	if cfg.TracerProvider != nil {
		cfg.Service = tracedService{Service: cfg.Service, policy: cfg.Policy}
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	full := &storeFull{log: cfg.Logger, now: cfg.Now, count: metrics.storeFullRefused}
	e.HTTPErrorHandler = errorHandler(cfg.Logger, full)
	s := &Server{cfg: cfg, echo: e, full: full, metrics: metrics}
	s.routes()
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// requestID honours a sane incoming X-Request-ID or makes one, and echoes it.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if len(id) == 0 || len(id) > 128 || !printable(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// newRequestID makes the id of a request that brings none: 24 hex
// digits, 96 random bits from math/rand/v2's per-thread generator, which
// reads no system randomness and takes no lock. Ids are unique with
// overwhelming likelihood and, unlike a counter, tell a client nothing of
// how many requests others made. An id is no secret.
func newRequestID() string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], rand.Uint64())
	binary.BigEndian.PutUint32(b[8:], rand.Uint32())
	var x [24]byte
	hex.Encode(x[:], b[:])
	return string(x[:])
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ImpactTimeout bounds a policy impact report, which scans the whole
// ledger (POST /v1/policy/impact): longer than a request's, within the
// server's write timeout (cmd/arbiter: 15s).
const ImpactTimeout = 12 * time.Second

// timeout bounds the request's context: d, or ImpactTimeout for the
// impact report.
func timeout(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			d := d
			if c.Path() == "/v1/policy/impact" {
				d = max(d, ImpactTimeout)
			}
			r := c.Request()
			ctx := &deadlineCtx{Context: r.Context(), deadline: startOf(c).Add(d)}
			defer ctx.cancel()
			c.SetRequest(r.WithContext(ctx))
			return next(c)
		}
	}
}

// deadlineCtx is context.WithDeadline(Context, deadline), made when first
// needed: its Deadline is known at once, but the timer and the link to the
// parent, which cost about as much as the rest of a ping, are made only
// when something waits on the context (Done) or asks whether it ended
// (Err), as every store call does. A request that never waits pays for
// neither. cancel releases what was made.
type deadlineCtx struct {
	context.Context // the parent
	deadline        time.Time

	mu    sync.Mutex // held to make and to cancel
	made  atomic.Pointer[madeCtx]
	ended bool // cancel was called: whatever is made after is cancelled
}

type madeCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *deadlineCtx) get() context.Context {
	if m := c.made.Load(); m != nil {
		return m.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.made.Load(); m != nil {
		return m.ctx
	}
	ctx, cancel := context.WithDeadline(c.Context, c.deadline)
	if c.ended {
		cancel()
	}
	c.made.Store(&madeCtx{ctx: ctx, cancel: cancel})
	return ctx
}

func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.get().Done() }

func (c *deadlineCtx) Err() error { return c.get().Err() }

// Value asks the made context once there is one, so that a context
// derived from this one (WithCancel) links to it, as to any other.
func (c *deadlineCtx) Value(key any) any {
	if m := c.made.Load(); m != nil {
		return m.ctx.Value(key)
	}
	return c.Context.Value(key)
}

func (c *deadlineCtx) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	if m := c.made.Load(); m != nil {
		m.cancel()
	}
}

// recoverPanics turns a panic into a 500 problem instead of a dropped connection.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error("panic", "route", c.Path(), "panic", r)
					err = errPanic
				}
			}()
			return next(c)
		}
	}
}

var errPanic = &panicError{}

type panicError struct{}

func (*panicError) Error() string { return "panic while handling the request" }

// AccessLogMessage is the message of the access log's lines, one per
// request, at info.
const AccessLogMessage = "request"

// accessLog logs one line per request: never bodies, keys, tokens or codes.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			ctx := c.Request().Context()
			if !log.Enabled(ctx, slog.LevelInfo) {
				return nil
			}
			end := time.Now()
			// A record of attrs, not key-value pairs: no value is boxed in an
			// interface; and no caller's PC (Logger.LogAttrs takes one with
			// runtime.Callers for every line), which only a handler with
			// AddSource would print, and arbiter's has none.
			r := slog.NewRecord(end, slog.LevelInfo, AccessLogMessage, 0)
			var attrs [8]slog.Attr
			a := append(attrs[:0], slog.String("method", c.Request().Method), slog.String("route", c.Path()),
				slog.Int("status", c.Response().Status), slog.Float64("duration_ms", float64(end.Sub(startOf(c)).Microseconds())/1000),
				slog.String("client", actorOf(c).ID), slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)))
			if err != nil {
				a = append(a, slog.String("reason", string(toProblem(err).Reason))) // a code, never the detail
			}
			if id := traceID(ctx); id != "" {
				a = append(a, slog.String("trace_id", id))
			}
			r.AddAttrs(a...)
			_ = log.Handler().Handle(ctx, r)
			return nil
		}
	}
}

// chain composes middleware, outermost first: chain(a, b)(h) is a(b(h)).
func chain(mw ...echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(h echo.HandlerFunc) echo.HandlerFunc {
		for i := len(mw) - 1; i >= 0; i-- {
			h = mw[i](h)
		}
		return h
	}
}
