package web_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
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

func withMetrics(m *web.Metrics) apiOption {
	return func(c *web.Config, _ *string) { c.Metrics = m }
}

// TestMetricsCountAFlow runs a flow through the API and checks that each
// counter moved by exactly what the flow did.
func TestMetricsCountAFlow(t *testing.T) {
	a := newAPI(t, withMetrics(web.NewMetrics(nil)))
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
	a := newAPI(t, withMetrics(web.NewMetrics(nil)))
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

// TestMetricsRedisScriptsAndPool checks the hooks cmd/arbiter wires: the
// store's Observe and the pool's stats.
func TestMetricsRedisScriptsAndPool(t *testing.T) {
	m := web.NewMetrics(nil)
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	store := redisstore.New(rdb, redisstore.Options{Observe: m.ObserveScript})
	m.ObservePool(func() web.PoolStats {
		s := rdb.PoolStats()
		return web.PoolStats{Hits: uint64(s.Hits), Misses: uint64(s.Misses), Timeouts: uint64(s.Timeouts),
			TotalConns: uint64(s.TotalConns), IdleConns: uint64(s.IdleConns), StaleConns: uint64(s.StaleConns)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		if _, err := store.Customer(ctx, "C-m-9", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	srv.Kill()
	if _, err := store.Customer(ctx, "C-m-9", time.Now()); err == nil {
		t.Fatal("Customer on a dead Redis succeeded")
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got := value(byName, "arbiter_redis_script_duration_seconds", map[string]string{"script": "customer", "outcome": "ok"}); got != 3 {
		t.Errorf("customer script ok count = %v, want 3", got)
	}
	if got := value(byName, "arbiter_redis_script_duration_seconds", map[string]string{"script": "customer", "outcome": "error"}); got != 1 {
		t.Errorf("customer script error count = %v, want 1", got)
	}
	if got := value(byName, "arbiter_redis_pool_requests_total", map[string]string{"result": "miss"}); got < 1 {
		t.Errorf("pool misses = %v, want ≥ 1 (the first connection was dialled)", got)
	}
	if _, ok := byName["arbiter_redis_pool_connections"]; !ok {
		t.Error("no arbiter_redis_pool_connections")
	}
}

// TestMetricsHoldExpiries: an expired hold is counted once, when the
// customer's next operation settles it (the store's OnExpiry hook, as
// cmd/arbiter wires it).
func TestMetricsHoldExpiries(t *testing.T) {
	m := web.NewMetrics(nil)
	mr := redistest.MustStartMiniredis(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	store := redisstore.New(rdb, redisstore.Options{OnExpiry: m.HoldExpired})
	svc := &validation.Service{Store: store, Policy: validation.DefaultPolicy()}
	ctx := context.Background()
	actor := validation.Actor{ID: "branch-portal", Roles: []validation.Role{validation.RoleChecker}}
	if _, _, err := svc.Check(ctx, actor, validation.CheckInput{CustomerID: "C-x", Product: "credit_card"}); err != nil {
		t.Fatal(err)
	}
	expiries := func() float64 {
		t.Helper()
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			byName[f.GetName()] = f
		}
		return value(byName, "arbiter_hold_expiries_total", nil)
	}
	if got := expiries(); got != 0 {
		t.Fatalf("expiries = %v while the hold lives", got)
	}
	mr.FastForward(10 * time.Minute) // past the 5 min hold TTL
	for range 2 {
		if _, err := svc.Customer(ctx, "C-x"); err != nil {
			t.Fatal(err)
		}
	}
	if got := expiries(); got != 1 {
		t.Fatalf("expiries = %v after two reads, want the one expiry counted once", got)
	}
}
