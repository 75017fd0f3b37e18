package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
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
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// timeout bounds the request's context.
func timeout(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeout(c.Request().Context(), d)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
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

// accessLog logs one line per request: never bodies, keys, tokens or codes.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			attrs := []any{"method", c.Request().Method, "route", c.Path(),
				"status", c.Response().Status, "duration_ms", float64(time.Since(start).Microseconds()) / 1000,
				"client", actorOf(c).ID, "request_id", c.Response().Header().Get(echo.HeaderXRequestID)}
			if err != nil {
				attrs = append(attrs, "reason", toProblem(err).Reason) // a code, never the detail
			}
			if id := traceID(c.Request().Context()); id != "" {
				attrs = append(attrs, "trace_id", id)
			}
			log.Info("request", attrs...)
			return nil
		}
	}
}
