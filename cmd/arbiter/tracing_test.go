package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/arbiter-bank/arbiter/internal/otlptest"
)

// A caller's trace context, as a product service would send it.
const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
	callerTraceparent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// TestTracing runs arbiter on a real Redis with OTLP/HTTP export to an
// in-process receiver, sends requests carrying a known traceparent, stops
// arbiter (which flushes its spans) and reads what was exported.
func TestTracing(t *testing.T) {
	recv := otlptest.Start(t)
	env := productionEnv(t)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = recv.Endpoint()
	env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
	env["OTEL_SERVICE_NAME"] = "arbiter-under-test"
	s := startRun(t, env)
	const checker, card = "prod-checker-key-123", "prod-card-key-123456"
	const byToken, byOTP = "C-TRACE-7731", "C-TRACE-8842"

	chk := call(t, s.base, "POST", "/v1/checks", checker, `{"customer_id":"`+byToken+`","product":"credit_card"}`, http.StatusCreated)
	token := chk["token"].(string)
	call(t, s.base, "POST", "/v1/redemptions", card, `{"token":"`+token+`"}`, http.StatusCreated)
	call(t, s.base, "POST", "/v1/checks", checker, `{"customer_id":"`+byToken+`","product":"personal_loan"}`, http.StatusConflict)
	chk2 := call(t, s.base, "POST", "/v1/checks", checker, `{"customer_id":"`+byOTP+`","product":"credit_card"}`, http.StatusCreated)
	otp := chk2["otp"].(string)
	call(t, s.base, "POST", "/v1/redemptions", card, `{"customer_id":"`+byOTP+`","product":"credit_card","otp":"`+otp+`"}`, http.StatusCreated)
	call(t, s.base, "GET", "/v1/customers/"+byOTP, checker, "", http.StatusOK)

	s.cancel()
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if s.err != nil {
		t.Fatalf("run = %v", s.err)
	}
	spans := recv.Spans()
	if len(spans) == 0 {
		t.Fatalf("no span exported; stderr: %s", s.stderr)
	}

	t.Run("continues the caller's trace with a server span per request", func(t *testing.T) {
		server := serverSpans(spans, "POST /v1/checks")
		if got, want := len(server), 3; got != want {
			t.Fatalf("%d server spans POST /v1/checks, want %d; spans: %s", got, want, names(spans))
		}
		for _, sp := range server {
			if sp.TraceID() != callerTraceID || sp.ParentID() != callerSpanID {
				t.Errorf("server span trace %s parent %s, want trace %s parent %s", sp.TraceID(), sp.ParentID(), callerTraceID, callerSpanID)
			}
			if got, _ := sp.Attr("http.route"); got != "/v1/checks" {
				t.Errorf("http.route = %q, want /v1/checks", got)
			}
			if sp.Service != "arbiter-under-test" {
				t.Errorf("service.name = %q, want OTEL_SERVICE_NAME's", sp.Service)
			}
		}
	})
	t.Run("a child span for the Redis script", func(t *testing.T) {
		for _, sp := range serverSpans(spans, "POST /v1/checks") {
			var redis []otlptest.Span
			for _, c := range spans {
				if c.ParentID() == sp.SpanID() && c.TraceID() == sp.TraceID() {
					redis = append(redis, c)
				}
			}
			// The check is a function on redis 7 (FCALL), a script elsewhere.
			if len(redis) != 1 || !strings.HasPrefix(redis[0].Name, "fcall") || redis[0].Kind != tracepb.Span_SPAN_KIND_CLIENT {
				t.Fatalf("children of %s = %s, want one client span fcall", sp.Name, names(redis))
			}
			if got, _ := redis[0].Attr("db.system"); got != "redis" {
				t.Errorf("redis span db.system = %q, want redis", got)
			}
		}
	})
	t.Run("product and outcome reason on the span", func(t *testing.T) {
		var reasons, products []string
		for _, sp := range serverSpans(spans, "POST /v1/checks") {
			r, _ := sp.Attr("arbiter.reason")
			p, _ := sp.Attr("arbiter.product")
			reasons, products = append(reasons, r), append(products, p)
		}
		if got, want := strings.Join(reasons, ","), ",conflicting_product,"; got != want {
			t.Errorf("arbiter.reason of the checks = %q, want %q", got, want)
		}
		if got, want := strings.Join(products, ","), "credit_card,personal_loan,credit_card"; got != want {
			t.Errorf("arbiter.product of the checks = %q, want %q", got, want)
		}
	})
	t.Run("the route template, not the path", func(t *testing.T) {
		got := serverSpans(spans, "GET /v1/customers/:customer_id")
		if len(got) != 1 {
			t.Fatalf("no GET /v1/customers/:customer_id span; spans: %s", names(spans))
		}
		if p, ok := got[0].Attr("url.path"); ok && p != "/v1/customers/:customer_id" {
			t.Errorf("url.path = %q exported, want none or the template", p)
		}
	})
	t.Run("no customer id, code, token or key in the exported batches", func(t *testing.T) {
		raw := recv.Raw()
		for name, secret := range map[string]string{"customer id": byToken, "other customer id": byOTP,
			"otp": otp, "token": token, "checker key": checker, "card key": card, "check id": chk["check_id"].(string)} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("the %s %q is in the exported spans", name, secret)
			}
		}
	})
	t.Run("no trace per readiness probe", func(t *testing.T) {
		for _, sp := range spans {
			if sp.Name == "ping" || strings.HasSuffix(sp.Name, "/readyz") {
				t.Errorf("span %q exported; /readyz and its Redis PING are not traced", sp.Name)
			}
		}
	})
	t.Run("the request log carries the trace id", func(t *testing.T) {
		if !strings.Contains(s.stderr.String(), `"trace_id":"`+callerTraceID+`"`) {
			t.Errorf("no request log line with trace_id %s:\n%s", callerTraceID, s.stderr)
		}
	})
}

// call sends one request with the caller's traceparent and checks its status.
func call(tb testing.TB, base, method, path, key, body string, want int) map[string]any {
	tb.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Traceparent", callerTraceparent)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		tb.Fatalf("%s %s = %d %v, want %d", method, path, resp.StatusCode, out, want)
	}
	return out
}

func serverSpans(spans []otlptest.Span, name string) []otlptest.Span {
	var out []otlptest.Span
	for _, sp := range spans {
		if sp.Kind == tracepb.Span_SPAN_KIND_SERVER && sp.Name == name {
			out = append(out, sp)
		}
	}
	return out
}

func names(spans []otlptest.Span) string {
	var b strings.Builder
	for _, sp := range spans {
		b.WriteString(sp.Name + " (" + sp.SpanID() + "<-" + sp.ParentID() + "); ")
	}
	return b.String()
}

// TestTracingMisconfigured: a typo in an OTEL_* variable stops the start
// with a message naming it, rather than silently running untraced.
func TestTracingMisconfigured(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		variable string
	}{
		{"unknown sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		{"unsupported protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"endpoint without a scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["ARBITER_ADDR"] = "127.0.0.1:0"
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"arbiter"}, func(k string) string { return tt.env[k] }, nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.variable) {
				t.Fatalf("run = %v, want an error naming %s", err, tt.variable)
			}
		})
	}
}

// TestTracingLogRedactsEndpoint: the start-up line names the collector,
// never the password an endpoint URL's userinfo carries.
func TestTracingLogRedactsEndpoint(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:s3cr3t-collector-pw@collector.example:4318"}
	tr, err := startTracing(context.Background(), func(k string) string { return env[k] }, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopTracing(tr, slog.New(slog.DiscardHandler)) })
	if !tr.Enabled() {
		t.Fatal("tracing off")
	}
	if out := buf.String(); strings.Contains(out, "s3cr3t") || !strings.Contains(out, "collector.example:4318") {
		t.Fatalf("start-up log = %s; want the collector without its password", out)
	}
}
