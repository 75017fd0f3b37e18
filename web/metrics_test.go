package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/arbiter-bank/arbiter/internal/metrics"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/web"
)

// scrape GETs /metrics and parses the text format.
func scrape(tb testing.TB, a *api) (map[string]*dto.MetricFamily, string) {
	tb.Helper()
	resp, err := a.client.Get(a.url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics = %d: %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return fams, string(body)
}

// value returns the counter's value, or the histogram's count, of the
// series of family name whose labels include want; 0 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func withRegistry(reg *prometheus.Registry) apiOption {
	return func(c *web.Config, _ *string) { c.Registry = reg }
}

// TestMetricsCountAFlow runs a flow through the API and checks that each
// counter moved by exactly what the flow did, and that /metrics serves the
// registry it was given whole, the process's metrics beside the API's.
func TestMetricsCountAFlow(t *testing.T) {
	a := newAPI(t, withRegistry(metrics.New(nil).Registry()))
	before, _ := scrape(t, a)

	card := a.mustCheck(t, "C-m-1", "credit_card")
	wantStatus(t, a.check(t, loanKey, "C-m-1", "personal_loan"), http.StatusConflict, validation.ReasonHoldExists)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": card.str("token")}), http.StatusCreated)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": card.str("token")}), http.StatusOK)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": "not.a.token"}), http.StatusForbidden, validation.ReasonTokenInvalid)
	wantStatus(t, a.check(t, checkerKey, "C-m-1", "personal_loan"), http.StatusConflict, validation.ReasonConflictingProduct)

	loan := a.mustCheck(t, "C-m-2", "personal_loan")
	otp := func(code string) map[string]string {
		return map[string]string{"customer_id": "C-m-2", "product": "personal_loan", "otp": code}
	}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, otp(otherCode(loan.str("otp")))), http.StatusUnprocessableEntity, validation.ReasonOTPInvalid)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, otp(loan.str("otp"))), http.StatusCreated)

	gone := a.mustCheck(t, "C-m-3", "credit_card")
	wantStatus(t, a.do(t, "DELETE", "/v1/checks/"+gone.str("check_id"), checkerKey, nil), http.StatusNoContent)
	wantStatus(t, a.do(t, "DELETE", "/v1/checks/"+gone.str("check_id"), checkerKey, nil), http.StatusConflict, validation.ReasonCheckNotHeld)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-m-1/products/credit_card", cardKey, nil), http.StatusNoContent)
	wantStatus(t, a.check(t, checkerKey, "C-m-4", "mortgage"), http.StatusBadRequest, validation.ReasonInvalidRequest)

	after, text := scrape(t, a)
	for _, c := range []struct {
		name   string
		labels map[string]string
		delta  float64
	}{
		{"arbiter_checks_total", map[string]string{"product": "credit_card", "outcome": "held"}, 2},
		{"arbiter_checks_total", map[string]string{"product": "personal_loan", "outcome": "held"}, 1},
		{"arbiter_checks_total", map[string]string{"product": "personal_loan", "outcome": "hold_exists"}, 1},
		{"arbiter_checks_total", map[string]string{"product": "personal_loan", "outcome": "conflicting_product"}, 1},
		{"arbiter_checks_total", map[string]string{"product": "unknown", "outcome": "invalid_request"}, 1},
		{"arbiter_redemptions_total", map[string]string{"channel": "token", "product": "credit_card", "outcome": "granted"}, 1},
		{"arbiter_redemptions_total", map[string]string{"channel": "token", "product": "credit_card", "outcome": "replayed"}, 1},
		{"arbiter_redemptions_total", map[string]string{"channel": "token", "outcome": "token_invalid"}, 1},
		{"arbiter_redemptions_total", map[string]string{"channel": "otp", "product": "personal_loan", "outcome": "otp_invalid"}, 1},
		{"arbiter_redemptions_total", map[string]string{"channel": "otp", "product": "personal_loan", "outcome": "granted"}, 1},
		{"arbiter_cancellations_total", map[string]string{"outcome": "cancelled"}, 1},
		{"arbiter_cancellations_total", map[string]string{"outcome": "check_not_held"}, 1},
		{"arbiter_releases_total", map[string]string{"product": "credit_card", "outcome": "released"}, 1},
		{"arbiter_http_request_duration_seconds", map[string]string{"method": "POST", "route": "/v1/checks", "code": "201"}, 3},
		{"arbiter_http_request_duration_seconds", map[string]string{"method": "POST", "route": "/v1/redemptions", "code": "422"}, 1},
		{"arbiter_http_request_duration_seconds", map[string]string{"method": "DELETE", "route": "/v1/checks/:check_id", "code": "204"}, 1},
	} {
		if got := value(after, c.name, c.labels) - value(before, c.name, c.labels); got != c.delta {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.delta)
		}
	}
	if value(after, "arbiter_build_info", nil) != 1 {
		t.Error("arbiter_build_info is not 1")
	}
	if value(after, "go_goroutines", nil) == 0 {
		t.Error("no Go runtime metrics")
	}
	// Labels stay low-cardinality: no customer or check id, no raw path.
	for _, leak := range []string{"C-m-1", "C-m-2", card.str("check_id"), "mortgage", "/v1/customers/C-"} {
		if strings.Contains(text, leak) {
			t.Errorf("/metrics contains %q", leak)
		}
	}
}

func TestMetricsUnmatchedRoutesShareOneLabel(t *testing.T) {
	a := newAPI(t, withRegistry(nil))
	for _, p := range []string{"/no/such/path-1", "/no/such/path-2", "/v1/checks/x/y/z"} {
		wantStatus(t, a.do(t, "GET", p, checkerKey, nil), http.StatusNotFound)
	}
	fams, text := scrape(t, a)
	if strings.Contains(text, "path-1") {
		t.Error("an unmatched path became a label value")
	}
	if got := value(fams, "arbiter_http_request_duration_seconds", map[string]string{"code": "404"}); got != 3 {
		t.Errorf("404s observed = %v, want 3", got)
	}
}
