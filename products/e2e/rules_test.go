package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestBankRuleSet is issue "Rules as data"'s definition of done, through
// the documented interfaces only, against arbiter as a process on a real
// redis-server: a bank's rule set (a family limit, a cooling-off period,
// an exclusive pair, a minimum rating) written in YAML as the second
// version of a policy file, tried with the impact endpoint before it is in
// force, switched on by its effective_from, and then enforced, each
// refusal naming its rule and the version.
func TestBankRuleSet(t *testing.T) {
	rds := redistest.MustStartRedis(t)
	dir := t.TempDir()
	const adminKey = "e2e-admin-key-000001"
	clients := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(clients, []byte(clientsYAML+"  - {id: ops, key: "+adminKey+", roles: [admin]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	scores := map[string]int{"D-RATED-LOW": 450}
	bureau := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		score, ok := scores[strings.TrimPrefix(r.URL.Path, "/v1/ratings/")]
		if !ok {
			score = 800
		}
		fmt.Fprintf(w, `{"score": %d}`, score)
	}))
	t.Cleanup(bureau.Close)

	// The catalog, and the rules of version 2, which comes into force a few
	// seconds after arbiter starts.
	catalog := `
      credit_card:   { hold_ttl: 5m,  redeemers: [card-service] }
      store_card:    { hold_ttl: 5m,  redeemers: [card-service] }
      overdraft:     { hold_ttl: 5m,  redeemers: [loan-service] }
      personal_loan: { hold_ttl: 10m, redeemers: [loan-service], min_rating: 600 }`
	rules := `
    exclusive: [[credit_card, personal_loan]]
    limits:
      - { name: unsecured_credit, title: unsecured credit products, max: 2, products: [credit_card, store_card, overdraft] }
    cooling_off:
      - { name: loan_after_store_card, after: [store_card], products: [personal_loan], period: 90d }`
	switchAt := time.Now().Add(6 * time.Second).Truncate(time.Second).Add(time.Second).UTC()
	policy := fmt.Sprintf(`rating: { url: "%s/v1/ratings/{customer_id}", on_unavailable: refuse }
versions:
  - version: "2026-01"
    products:%s
    exclusive: [[credit_card, personal_loan]]
  - version: "2026-07"
    effective_from: %s
    products:%s%s
`, bureau.URL, catalog, switchAt.Format(time.RFC3339), catalog, rules)
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	arb := proctest.Start(t, arbiterBin, []string{"-addr", "127.0.0.1:0", "-redis-url", rds.URL(),
		"-clients", clients, "-signing-key", key, "-policy", policyFile, "-log-level", "warn"}, nil)
	proctest.WaitReady(t, arb.URL)
	api := apiClient{t: t, base: arb.URL}

	// The ledger: A holds a credit card and an overdraft; B held a store
	// card, closed since; C holds a credit card.
	for _, g := range [][2]string{{"A-TWO", "credit_card"}, {"A-TWO", "overdraft"}, {"B-CLOSED", "store_card"}, {"C-CARD", "credit_card"}} {
		api.want(http.StatusCreated, "PUT", "/v1/customers/"+g[0]+"/products/"+g[1], adminKey, nil)
	}
	api.want(http.StatusNoContent, "DELETE", "/v1/customers/B-CLOSED/products/store_card", adminKey, nil)

	t.Run("tried before it is in force", func(t *testing.T) {
		api := api.in(t)
		// The file as it will be: its version in force at the switch.
		rep := api.wantYAML(http.StatusOK, "/v1/policy/impact?at="+switchAt.Format(time.RFC3339), adminKey, policy)
		if rep["policy_version"] != "2026-07" || rep["customers_in_violation"] != 0.0 || rep["customers_scanned"].(float64) < 3 {
			t.Fatalf("impact of the new version = %v; want 2026-07, nobody in violation, every customer scanned", rep)
		}
		// A stricter candidate (one unsecured product) puts A in violation,
		// with the rule in words.
		strict := strings.Replace(policy, "max: 2", "max: 1", 1)
		rep = api.wantYAML(http.StatusOK, "/v1/policy/impact?at="+switchAt.Format(time.RFC3339), adminKey, strict)
		ex, _ := rep["examples"].([]any)
		if rep["customers_in_violation"] != 1.0 || len(ex) != 1 || !strings.Contains(fmt.Sprint(ex[0]), "A-TWO") ||
			!strings.Contains(fmt.Sprint(ex[0]), "rule unsecured_credit") {
			t.Fatalf("impact of a stricter candidate = %v; want A-TWO in violation, the rule named", rep)
		}
	})

	t.Run("not in force before its date", func(t *testing.T) {
		api := api.in(t)
		if !time.Now().Before(switchAt.Add(-time.Second)) {
			t.Skip("the machine was too slow to reach this before the switch")
		}
		c := api.want(http.StatusCreated, "POST", "/v1/checks", branchKey, map[string]string{"customer_id": "A-TWO", "product": "store_card"})
		if c["policy_version"] != "2026-01" {
			t.Fatalf("check before the switch = %v; want it decided under 2026-01", c)
		}
		api.want(http.StatusNoContent, "DELETE", "/v1/checks/"+c["check_id"].(string), adminKey, nil)
	})

	// The switch: every instance decides by arbiter's clock (Redis's), so
	// the dry run says when it has come.
	deadline := time.Now().Add(30 * time.Second)
	for {
		e := api.want(http.StatusOK, "GET", "/v1/customers/C-CARD/eligibility?product=store_card", branchKey, nil)
		if e["policy_version"] == "2026-07" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 2026-07 version was not in force 30s after its effective_from %s: %v", switchAt, e)
		}
		time.Sleep(100 * time.Millisecond) // the subject is the wall clock reaching switchAt
	}

	for _, tc := range []struct {
		customer, product string
		reason, rule      string
		words             string
	}{
		{"A-TWO", "store_card", "family_limit", "unsecured_credit", "Customer holds 2 of 2 unsecured credit products"},
		{"B-CLOSED", "personal_loan", "cooling_off", "loan_after_store_card", "rule loan_after_store_card asks 90 days"},
		{"C-CARD", "personal_loan", "conflicting_product", "", "which excludes this product"},
		{"D-RATED-LOW", "personal_loan", "rating_too_low", "", "credit rating is below"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			api := api.in(t)
			p := api.want(http.StatusConflict, "POST", "/v1/checks", branchKey, map[string]string{"customer_id": tc.customer, "product": tc.product})
			vs, _ := p["violations"].([]any)
			if p["reason"] != tc.reason || p["policy_version"] != "2026-07" || len(vs) == 0 {
				t.Fatalf("refusal = %v; want %s under 2026-07", p, tc.reason)
			}
			v := vs[0].(map[string]any)
			if rule, _ := v["rule"].(string); rule != tc.rule || !strings.Contains(v["detail"].(string), tc.words) {
				t.Fatalf("violation = %v; want rule %q and words %q", v, tc.rule, tc.words)
			}
		})
	}

	t.Run("what the rules allow is allowed", func(t *testing.T) {
		api := api.in(t)
		c := api.want(http.StatusCreated, "POST", "/v1/checks", branchKey, map[string]string{"customer_id": "C-CARD", "product": "store_card"})
		if c["policy_version"] != "2026-07" {
			t.Fatalf("check = %v; want it decided under 2026-07", c)
		}
	})
}

// apiClient speaks arbiter's HTTP API as any outside client would.
type apiClient struct {
	t    *testing.T
	base string
}

// in is the client failing t.
func (a apiClient) in(t *testing.T) apiClient {
	a.t = t
	return a
}

func (a apiClient) do(method, path, key, contentType string, body io.Reader) (int, map[string]any) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			a.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, out
}

// want sends a JSON request and fails unless it is answered status.
func (a apiClient) want(status int, method, path, key string, body any) map[string]any {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	got, out := a.do(method, path, key, "application/json", rd)
	if got != status {
		a.t.Fatalf("%s %s = %d %v; want %d", method, path, got, out, status)
	}
	return out
}

// wantYAML posts a policy file.
func (a apiClient) wantYAML(status int, path, key, doc string) map[string]any {
	a.t.Helper()
	got, out := a.do("POST", path, key, "application/yaml", strings.NewReader(doc))
	if got != status {
		a.t.Fatalf("POST %s = %d %v; want %d", path, got, out, status)
	}
	return out
}
