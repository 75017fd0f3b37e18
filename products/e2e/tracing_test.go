package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/arbiter-bank/arbiter/internal/otlptest"
	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestTraceAcrossServices follows one application through the card
// service and arbiter, both real processes exporting OTLP/HTTP to an
// in-process receiver: the caller's traceparent is continued by the card
// service, whose call to arbiter carries it on, down to arbiter's Redis
// span. The processes are stopped (SIGTERM flushes their spans) before the
// batches are read.
func TestTraceAcrossServices(t *testing.T) {
	recv := otlptest.Start(t)
	otel := func(service string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.Endpoint(), "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_SERVICE_NAME=" + service, "OTEL_TRACES_SAMPLER=parentbased_always_on"}
	}
	rds := redistest.MustStartRedis(t)
	dir := t.TempDir()
	clients := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(clients, []byte(clientsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	arb := proctest.Start(t, arbiterBin, []string{"-addr", "127.0.0.1:0", "-redis-url", rds.URL(),
		"-clients", clients, "-signing-key", key, "-log-level", "warn"}, otel("arbiter"))
	proctest.WaitReady(t, arb.URL)
	card := proctest.Start(t, productsvcBin, []string{"-addr", "127.0.0.1:0", "-product", "credit_card", "-id", "card-service",
		"-db", filepath.Join(dir, "card.db"), "-arbiter-url", arb.URL, "-log-level", "warn"},
		append(otel("card-service"), "PRODUCTSVC_ARBITER_KEY="+cardKey))
	proctest.WaitReady(t, card.URL)

	const traceID, callerSpan = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	customer := "C-E2E-TRACE-4417"
	body, _ := json.Marshal(map[string]string{"customer_id": customer})
	req, _ := http.NewRequest("POST", card.URL+"/v1/applications/online", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var applied map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&applied)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("online application = %d %v", resp.StatusCode, applied)
	}
	closeReq, _ := http.NewRequest("DELETE", card.URL+"/v1/products/"+customer, nil)
	closeReq.Header.Set("Traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err = http.DefaultClient.Do(closeReq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("close = %d", resp.StatusCode)
	}
	card.Stop()
	arb.Stop()

	spans := recv.Spans()
	find := func(service, name string, kind tracepb.Span_SpanKind, parent string) otlptest.Span {
		t.Helper()
		for _, s := range spans {
			if s.Service == service && s.Name == name && s.Kind == kind && s.ParentID() == parent {
				return s
			}
		}
		var b strings.Builder
		for _, s := range spans {
			b.WriteString(s.Service + ": " + s.Name + " " + s.Kind.String() + " " + s.SpanID() + "<-" + s.ParentID() + "\n")
		}
		t.Fatalf("no %s span %q (%v) with parent %s in:\n%s", service, name, kind, parent, b.String())
		return otlptest.Span{}
	}
	server := find("card-service", "POST /v1/applications/online", tracepb.Span_SPAN_KIND_SERVER, callerSpan)
	checkCall := find("card-service", "POST /v1/checks", tracepb.Span_SPAN_KIND_CLIENT, server.SpanID())
	arbCheck := find("arbiter", "POST /v1/checks", tracepb.Span_SPAN_KIND_SERVER, checkCall.SpanID())
	find("arbiter", "fcall", tracepb.Span_SPAN_KIND_CLIENT, arbCheck.SpanID()) // the check is a Redis function
	redeemCall := find("card-service", "POST /v1/redemptions", tracepb.Span_SPAN_KIND_CLIENT, server.SpanID())
	find("arbiter", "POST /v1/redemptions", tracepb.Span_SPAN_KIND_SERVER, redeemCall.SpanID())
	closed := find("card-service", "DELETE /v1/products/{customer_id}", tracepb.Span_SPAN_KIND_SERVER, callerSpan)
	releaseCall := find("card-service", "DELETE /v1/customers/{customer_id}/products/{product}", tracepb.Span_SPAN_KIND_CLIENT, closed.SpanID())
	find("arbiter", "DELETE /v1/customers/:customer_id/products/:product", tracepb.Span_SPAN_KIND_SERVER, releaseCall.SpanID())
	for _, s := range []otlptest.Span{server, checkCall, arbCheck, closed} {
		if s.TraceID() != traceID {
			t.Errorf("%s %s: trace %s, want the caller's %s", s.Service, s.Name, s.TraceID(), traceID)
		}
	}
	raw := recv.Raw()
	secrets := []string{customer, cardKey}
	if id, _ := applied["check_id"].(string); id != "" {
		secrets = append(secrets, id)
	}
	for _, secret := range secrets {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("%q is in the exported spans", secret)
		}
	}
}
