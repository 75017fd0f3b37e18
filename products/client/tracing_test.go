package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbiter-bank/arbiter/products/client"
)

// traceparents is a proxy in front of arbiter that keeps the traceparent
// header of every request it passes on.
type traceparents struct {
	mu   sync.Mutex
	seen []string
}

func (tp *traceparents) proxy(tb testing.TB) string {
	tb.Helper()
	target, err := url.Parse(arbiterURL())
	if err != nil {
		tb.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		tp.seen = append(tp.seen, r.Header.Get("Traceparent"))
		tp.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

func TestTracing(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var headers traceparents
	c, err := client.New(client.Config{BaseURL: headers.proxy(t), APIKey: cardKey, ClientID: "card-service", TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "apply")
	customer := newCustomer("C-TRACED")
	chk, err := c.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Redeem(ctx, client.Redemption{Token: chk.Token}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Customer(ctx, customer); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, customer, "credit_card", chk.ID); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var spans []tracetest.SpanStub
	for _, s := range mem.GetSpans() {
		if s.SpanKind == trace.SpanKindClient {
			spans = append(spans, s)
		}
	}
	t.Run("a client span per call, named after its template", func(t *testing.T) {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
			if s.Parent.SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("span %s is not a child of the caller's span", s.Name)
			}
		}
		want := "POST /v1/checks,POST /v1/redemptions,GET /v1/customers/{customer_id},DELETE /v1/customers/{customer_id}/products/{product}"
		if got := strings.Join(names, ","); got != want {
			t.Errorf("client spans = %s, want %s", got, want)
		}
	})
	t.Run("arbiter receives each span's context", func(t *testing.T) {
		headers.mu.Lock()
		defer headers.mu.Unlock()
		if len(headers.seen) != len(spans) {
			t.Fatalf("%d requests, %d spans", len(headers.seen), len(spans))
		}
		for i, s := range spans {
			want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
			if headers.seen[i] != want {
				t.Errorf("request %d traceparent = %q, want %q", i, headers.seen[i], want)
			}
		}
	})
	t.Run("no customer id, check id, token or key in any attribute", func(t *testing.T) {
		for _, s := range spans {
			for _, a := range s.Attributes {
				v := a.Value.Emit()
				for _, secret := range []string{customer, chk.ID, chk.Token, cardKey} {
					if strings.Contains(v, secret) {
						t.Errorf("span %s: %s = %q holds %q", s.Name, a.Key, v, secret)
					}
				}
			}
		}
	})
}

func TestUntracedClientSendsNoTraceparent(t *testing.T) {
	var headers traceparents
	c, err := client.New(client.Config{BaseURL: headers.proxy(t), APIKey: checkerKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Customer(context.Background(), newCustomer("C-UNTRACED")); err != nil {
		t.Fatal(err)
	}
	if len(headers.seen) != 1 || headers.seen[0] != "" {
		t.Errorf("traceparents sent = %q, want one empty", headers.seen)
	}
}
