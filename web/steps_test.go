package web

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The API key of the fixture's client, a checker and redeemer of credit_card.
const stepsKey = "steps-card-key-000001"

// stepsFixture is the API as cmd/arbiter builds it (JSON access log, the
// API's metrics, no tracing, so the scripts' calls autopipelined), over a
// real redis-server, driven in process:
// requests go straight to ServeHTTP, so the figures are arbiter's own cost
// without the network's or net/http's.
type stepsFixture struct {
	srv    *Server
	svc    *validation.Service
	issuer *tokens.Issuer
}

func newStepsFixture(tb testing.TB) *stepsFixture {
	tb.Helper()
	store := redisstore.New(redistest.MustStartRedis(tb).Client(tb), redisstore.Options{AutoPipeline: true})
	if err := store.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	policy, err := policyfile.Parse([]byte(policyfile.DefaultYAML))
	if err != nil {
		tb.Fatal(err)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	clients, err := clientauth.Parse([]byte("clients:\n  - { id: card-service, key: " + stepsKey + ", roles: [checker, redeemer] }\n"))
	if err != nil {
		tb.Fatal(err)
	}
	svc := &validation.Service{Store: store, Policy: policy}
	srv := New(Config{Service: svc, Tokens: issuer, Policy: policy, Clients: clients, Ready: store.Ping,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	return &stepsFixture{srv: srv, svc: svc, issuer: issuer}
}

// sink is a ResponseWriter that keeps the status and headers and drops the
// body; reset makes it fresh for the next request without allocating.
type sink struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newSink() *sink { return &sink{h: http.Header{}} }

func (w *sink) Header() http.Header         { return w.h }
func (w *sink) WriteHeader(status int)      { w.status = status }
func (w *sink) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *sink) reset()                      { clear(w.h); w.status = 0; w.body.Reset() }

// body is a request body that can be read again after reset.
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

// request is a reusable request: the same *http.Request, its body rewound
// to data on every reset.
type request struct {
	r *http.Request
	b *body
}

func newRequest(method, target string, header ...string) *request {
	r, _ := http.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	b := &body{}
	r.Body = b
	return &request{r: r, b: b}
}

func (q *request) reset(data []byte) *http.Request {
	q.b.Reset(data)
	q.r.ContentLength = int64(len(data))
	return q.r
}

// checkBody is a check request for customer S-<n>, appended to buf[:0].
func checkBody(buf []byte, n int) []byte {
	buf = append(buf[:0], `{"customer_id":"S-`...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	return append(buf, `","product":"credit_card"}`...)
}

// serve runs one request through the whole handler and checks its status.
func (f *stepsFixture) serve(tb testing.TB, w *sink, r *http.Request, want int) {
	w.reset()
	f.srv.ServeHTTP(w, r)
	if w.status != want {
		tb.Fatalf("%s %s = %d %s, want %d", r.Method, r.URL.Path, w.status, w.body.Bytes(), want)
	}
}

// placeChecks places n checks on fresh customers (from first on) and
// returns their approval tokens.
func (f *stepsFixture) placeChecks(tb testing.TB, first, n int) []string {
	tb.Helper()
	w, q := newSink(), newRequest("POST", "/v1/checks", "Authorization", "Bearer "+stepsKey, "Content-Type", "application/json")
	toks := make([]string, n)
	var buf []byte
	for i := range n {
		buf = checkBody(buf, first+i)
		f.serve(tb, w, q.reset(buf), http.StatusCreated)
		var resp struct{ Token string }
		if err := stdjson.Unmarshal(w.body.Bytes(), &resp); err != nil {
			tb.Fatal(err)
		}
		toks[i] = resp.Token
	}
	return toks
}

// BenchmarkRequestSteps measures what each part of a request costs, in
// process and without the network: "stack=" a whole request through
// ServeHTTP (bare is net/http's smallest handler answering 204, the floor),
// "middleware=" one middleware around a handler that does nothing, "check="
// one step of POST /v1/checks. The middleware figures add up to roughly
// stack=ping minus stack=echo; the check steps to stack=check minus
// stack=ping. BENCHMARKS.md keeps the table.
//
//	go test -run '^$' -bench '^BenchmarkRequestSteps$' -benchmem ./web/
func BenchmarkRequestSteps(b *testing.B) {
	f := newStepsFixture(b)
	auth := []string{"Authorization", "Bearer " + stepsKey}
	customers := 0 // every check is on a customer of its own, across sub-benchmarks

	b.Run("stack=bare", func(b *testing.B) {
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
		w, q := newSink(), newRequest("GET", "/v1/ping", auth...)
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, q.reset(nil))
		}
	})
	b.Run("stack=echo", func(b *testing.B) {
		e := echo.New()
		e.GET("/v1/ping", handlePing())
		w, q := newSink(), newRequest("GET", "/v1/ping", auth...)
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			e.ServeHTTP(w, q.reset(nil))
		}
	})
	b.Run("stack=ping", func(b *testing.B) {
		w, q := newSink(), newRequest("GET", "/v1/ping", auth...)
		b.ReportAllocs()
		for b.Loop() {
			f.serve(b, w, q.reset(nil), http.StatusNoContent)
		}
	})
	b.Run("stack=check", func(b *testing.B) {
		w, q := newSink(), newRequest("POST", "/v1/checks", append(auth, "Content-Type", "application/json")...)
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			customers++
			buf = checkBody(buf, customers)
			f.serve(b, w, q.reset(buf), http.StatusCreated)
		}
	})
	b.Run("stack=redeem", func(b *testing.B) {
		toks := f.placeChecks(b, customers+1, b.N)
		customers += b.N
		w, q := newSink(), newRequest("POST", "/v1/redemptions", append(auth, "Content-Type", "application/json")...)
		var buf []byte
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			buf = append(append(append(buf[:0], `{"token":"`...), toks[i]...), `"}`...)
			f.serve(b, w, q.reset(buf), http.StatusCreated)
		}
	})

	s := f.srv
	middleware := []struct {
		name string
		mw   echo.MiddlewareFunc
	}{
		{"recover", recoverPanics(s.cfg.Logger)},
		{"request_id", requestID},
		{"tracing_off", chain(s.tracing()...)},
		{"metrics", s.metrics.observeRequests},
		{"access_log", accessLog(s.cfg.Logger)},
		{"timeout", timeout(s.cfg.RequestTimeout)},
		{"session", newBranchUI(s.cfg).sessionAuth},
		{"auth", authenticate(s.cfg.Clients)},
		{"require", require(validation.RoleChecker)},
	}
	checker := &validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleChecker}}
	for _, m := range middleware {
		b.Run("middleware="+m.name, func(b *testing.B) {
			w, q := newSink(), newRequest("GET", "/v1/ping", auth...)
			c := s.echo.NewContext(q.r, w)
			inner := m.mw(handlePing())
			h := withRequestContext(func(c echo.Context) error {
				if m.name == "require" {
					setActor(c, checker) // as authenticate leaves it
				}
				return inner(c)
			})
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				c.Reset(q.reset(nil), w)
				c.SetPath("/v1/ping")
				if err := h(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	// The steps of a check, each alone, in the order the handler runs them.
	b.Run("check=decode", func(b *testing.B) {
		w, q := newSink(), newRequest("POST", "/v1/checks", append(auth, "Content-Type", "application/json")...)
		c := s.echo.NewContext(q.r, w)
		buf := checkBody(nil, 1)
		b.ReportAllocs()
		for b.Loop() {
			c.Reset(q.reset(buf), w)
			var req createCheckRequest
			if err := decode(c, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	actor := validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}}
	b.Run("check=store", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			customers++
			if _, _, err := f.svc.Check(ctx, actor, validation.CheckInput{CustomerID: "S-" + strconv.Itoa(customers), Product: "credit_card"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	customers++
	ch, _, err := f.svc.Check(context.Background(), actor, validation.CheckInput{CustomerID: "S-" + strconv.Itoa(customers), Product: "credit_card"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("check=otp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.cfg.OTPCode(ch.Secret, ch.CreatedAt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check=sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.sign(ch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check=encode", func(b *testing.B) {
		resp, err := s.checkView(ch)
		if err != nil {
			b.Fatal(err)
		}
		if resp.Token, err = s.sign(ch); err != nil {
			b.Fatal(err)
		}
		w, q := newSink(), newRequest("POST", "/v1/checks", auth...)
		c := s.echo.NewContext(q.r, w)
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			c.Reset(q.reset(nil), w)
			if err := c.JSON(http.StatusCreated, resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
