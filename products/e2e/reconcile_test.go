package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

const (
	opsKey      = "e2e-ops-admin-key-000"
	cardFeedKey = "e2e-card-feed-key"
	loanFeedKey = "e2e-loan-feed-key"
)

// LegacyInsert is the statement docs/reconciliation.md shows for a product issued outside
// arbiter: channel 'legacy', a unique placeholder check id (the feed
// reports none), fence 1.
const legacyInsert = `INSERT INTO products (customer_id, product, check_id, fence, issued_at, channel)
  VALUES (?, ?, 'legacy-' || ?, 1, ?, 'legacy')`

// fakeFeed is a product system outside arbiter's reach (a core banking
// system's overdrafts), serving the holdings feed from memory.
type fakeFeed struct {
	mu        sync.Mutex
	customers []string
	failPage  int // this 1-based page answers 500; 0: none
	page      int
}

func (f *fakeFeed) set(failPage int, customers ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.customers, f.failPage, f.page = customers, failPage, 0
}

func (f *fakeFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.page++
	if f.page == f.failPage {
		http.Error(w, "upstream timeout", http.StatusBadGateway)
		return
	}
	after, limit := r.URL.Query().Get("after"), 0
	fmt.Sscan(r.URL.Query().Get("limit"), &limit)
	type holding struct {
		CustomerID string `json:"customer_id"`
		Product    string `json:"product"`
		IssuedAt   string `json:"issued_at"`
	}
	resp := struct {
		Holdings []holding `json:"holdings"`
		Next     string    `json:"next"`
	}{Holdings: []holding{}}
	for _, c := range f.customers {
		if c > after && len(resp.Holdings) < limit {
			resp.Holdings = append(resp.Holdings, holding{CustomerID: c, Product: "overdraft", IssuedAt: "2015-06-01T00:00:00Z"})
		}
	}
	if n := len(resp.Holdings); n == limit && resp.Holdings[n-1].CustomerID != f.customers[len(f.customers)-1] {
		resp.Next = resp.Holdings[n-1].CustomerID
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// reconSystem is arbiter with a reconcile: block over the card and loan
// services (real processes, their own SQLite files) and the fake feed.
type reconSystem struct {
	arbiter    string
	card, loan *service
	fake       *fakeFeed
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startReconSystem(t *testing.T, redisURL string) *reconSystem {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	arbAddr := freeAddr(t) // the services need arbiter's URL, arbiter needs theirs
	sys := &reconSystem{arbiter: "http://" + arbAddr, fake: &fakeFeed{}}
	startSvc := func(product, id, key, feedKey, db string) *service {
		path := filepath.Join(dir, db)
		p := proctest.Start(t, productsvcBin, []string{"-addr", "127.0.0.1:0", "-product", product, "-id", id,
			"-db", path, "-arbiter-url", sys.arbiter, "-log-level", "warn"},
			[]string{"PRODUCTSVC_ARBITER_KEY=" + key, "PRODUCTSVC_FEED_KEY=" + feedKey})
		return &service{proc: p, product: product, id: id, key: key, db: path}
	}
	sys.card = startSvc("credit_card", "card-service", cardKey, cardFeedKey, "card.db")
	sys.loan = startSvc("personal_loan", "loan-service", loanKey, loanFeedKey, "loan.db")
	fake := httptest.NewServer(sys.fake)
	t.Cleanup(fake.Close)

	clients := write("clients.yaml", clientsYAML+"  - {id: ops, key: "+opsKey+", roles: [admin]}\n")
	policy := write("policy.yaml", fmt.Sprintf(`products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service] }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
  overdraft:     { hold_ttl: 5m,  redeemers: [ops] }
exclusive:
  - [credit_card, personal_loan]
reconcile:
  grace: 15m
  on_orphan: release
  page_size: 2
  sources:
    - { product: credit_card,   url: %s/v1/holdings, key_file: %s, name: card-service }
    - { product: personal_loan, url: %s/v1/holdings, key_file: %s, name: loan-service }
    - { product: overdraft,     url: %s/holdings, name: core-banking }
`, sys.card.proc.URL, write("card.key", cardFeedKey+"\n"), sys.loan.proc.URL, write("loan.key", loanFeedKey), fake.URL))
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	arb := proctest.Start(t, arbiterBin, []string{"-addr", arbAddr, "-redis-url", redisURL, "-policy", policy,
		"-clients", clients, "-signing-key", key, "-log-level", "warn"}, nil)
	proctest.WaitReady(t, arb.URL)
	proctest.WaitReady(t, sys.card.proc.URL)
	proctest.WaitReady(t, sys.loan.proc.URL)
	return sys
}

// do calls arbiter with key and decodes the JSON answer.
func do(tb testing.TB, method, url, key string, body any) (int, map[string]any) {
	tb.Helper()
	rd := bytes.NewReader(nil)
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// reconcile starts a run with one POST and reads it until it ends.
func (s *reconSystem) reconcile(t *testing.T) map[string]any {
	t.Helper()
	st, started := do(t, http.MethodPost, s.arbiter+"/v1/reconciliations", opsKey, nil)
	if st != http.StatusAccepted {
		t.Fatalf("POST /v1/reconciliations: %d %v", st, started)
	}
	var run map[string]any
	waitFor(t, 20*time.Second, "reconciliation finished", func() bool {
		_, run = do(t, http.MethodGet, s.arbiter+"/v1/reconciliations/"+started["id"].(string)+"?limit=1000", opsKey, nil)
		return run["status"] != "running"
	})
	if run["status"] != "done" {
		t.Fatalf("run %v", run)
	}
	return run
}

func sourceOf(run map[string]any, product string) map[string]any {
	for _, s := range run["sources"].([]any) {
		if m := s.(map[string]any); m["product"] == product {
			return m
		}
	}
	return nil
}

func (s *reconSystem) holds(t *testing.T, customer string) []string {
	t.Helper()
	_, c := do(t, http.MethodGet, s.arbiter+"/v1/customers/"+customer, opsKey, nil)
	var ps []string
	for _, p := range c["products"].([]any) {
		ps = append(ps, p.(map[string]any)["product"].(string))
	}
	return ps
}

func insertLegacy(t *testing.T, db, customer, product, issued string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(legacyInsert, customer, product, customer, issued); err != nil {
		t.Fatalf("legacy insert into %s: %v", db, err)
	}
}

// TestReconciliationAcrossProcesses: arbiter, card and loan as processes,
// legacy rows inserted straight into the services' databases, a fake feed
// for products issued outside arbiter; one POST finds every kind, and a
// feed that fails on page 2 or is empty releases nothing.
func TestReconciliationAcrossProcesses(t *testing.T) {
	reconcileScenario(t, startReconSystem(t, redistest.MustStartRedis(t).URL()))
}

// TestReconciliationOnCluster is the same with arbiter on a 3-master Redis
// Cluster: the orphan scan reads every master.
func TestReconciliationOnCluster(t *testing.T) {
	reconcileScenario(t, startReconSystem(t, redistest.MustStartCluster(t).URL()))
}

func reconcileScenario(t *testing.T, sys *reconSystem) {
	ctx := context.Background()
	old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	put := func(customer, product string) {
		if st, body := do(t, http.MethodPut, sys.arbiter+"/v1/customers/"+customer+"/products/"+product, opsKey, map[string]string{"granted_at": old}); st != http.StatusCreated {
			t.Fatalf("import %s %s: %d %v", customer, product, st, body)
		}
	}
	insertLegacy(t, sys.card.db, "C-1", "credit_card", "2019-03-01T00:00:00Z")   // imported
	insertLegacy(t, sys.card.db, "C-2", "credit_card", "2019-03-01T00:00:00Z")   // with C-2's loan: a case
	insertLegacy(t, sys.loan.db, "C-2", "personal_loan", "2021-04-02T00:00:00Z") //
	put("C-3", "personal_loan")                                                  // no service holds it: orphan, reported (released only on a second sighting)
	if a := sys.card.applyOnline(ctx, "C-4"); a.Status != http.StatusCreated {   // then arbiter's grant is replaced: mismatch
		t.Fatalf("apply C-4: %v", a)
	}
	if st, _ := do(t, http.MethodDelete, sys.arbiter+"/v1/customers/C-4/products/credit_card", opsKey, nil); st != http.StatusNoContent {
		t.Fatalf("release C-4: %d", st)
	}
	put("C-4", "credit_card")
	if a := sys.loan.applyOnline(ctx, "C-5"); a.Status != http.StatusCreated { // in order: nothing to say
		t.Fatalf("apply C-5: %v", a)
	}
	sys.fake.set(0, "O-1", "O-2", "O-3") // overdrafts arbiter never saw: imported

	t.Run("the feed needs its key", func(t *testing.T) {
		if st, _ := do(t, http.MethodGet, sys.card.proc.URL+"/v1/holdings", "wrong", nil); st != http.StatusUnauthorized {
			t.Errorf("holdings with a wrong key: %d, want 401", st)
		}
	})

	run := sys.reconcile(t)
	counts := run["counts"].(map[string]any)
	for kind, want := range map[string]float64{"imported": 4, "double_holding": 1, "orphan_grant": 1, "check_mismatch": 1} {
		if counts[kind] != want {
			t.Errorf("counts[%s] = %v, want %v (run %v)", kind, counts[kind], want, run)
		}
	}
	for customer, want := range map[string]string{"C-1": "credit_card", "O-2": "overdraft", "C-3": "personal_loan", "C-4": "credit_card", "C-5": "personal_loan"} {
		if got := sys.holds(t, customer); len(got) != 1 || got[0] != want {
			t.Errorf("%s holds %v at arbiter, want [%s]", customer, got, want)
		}
	}
	for _, customer := range []string{"C-2"} {
		if got := sys.holds(t, customer); len(got) != 0 {
			t.Errorf("%s holds %v at arbiter, want nothing", customer, got)
		}
	}
	if src := sourceOf(run, "overdraft"); src["holdings"] != float64(3) || src["status"] != "done" || src["proven"] != false {
		t.Errorf("overdraft source = %v, want done, unproven (the fake feed sends no proof)", src)
	}
	for _, product := range []string{"credit_card", "personal_loan"} { // productsvc proves every page
		if src := sourceOf(run, product); src["status"] != "done" || src["proven"] != true {
			t.Errorf("%s source = %v, want done and proven", product, src)
		}
	}
	t.Run("metrics count the findings and each source's success", func(t *testing.T) {
		resp, err := http.Get(sys.arbiter + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		for _, want := range []string{`arbiter_reconcile_findings_total{kind="imported"} 4`, `arbiter_reconcile_findings_total{kind="double_holding"} 1`,
			`arbiter_reconcile_last_success_timestamp_seconds{product="credit_card"}`, `arbiter_reconcile_last_success_timestamp_seconds{product="overdraft"}`} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("the case is listed in plain words and resolved by an admin", func(t *testing.T) {
		_, cases := do(t, http.MethodGet, sys.arbiter+"/v1/cases", branchKey, nil)
		list := cases["cases"].([]any)
		if len(list) != 1 {
			t.Fatalf("cases = %v", cases)
		}
		c := list[0].(map[string]any)
		want := "Customer C-2 holds a Credit card at card-service since 1 Mar 2019 and a Personal loan at loan-service since 2 Apr 2021: contact the customer."
		if c["customer_id"] != "C-2" || c["detail"] != want {
			t.Errorf("case = %v\nwant detail %q", c, want)
		}
		if st, _ := do(t, http.MethodPost, sys.arbiter+"/v1/cases/C-2/resolution", branchKey, map[string]string{"note": "x"}); st != http.StatusForbidden {
			t.Errorf("resolve by a checker: %d, want 403", st)
		}
		if st, body := do(t, http.MethodPost, sys.arbiter+"/v1/cases/C-2/resolution", opsKey, map[string]string{"note": "customer keeps the loan; card closed"}); st != http.StatusOK {
			t.Fatalf("resolve: %d %v", st, body)
		}
		_, audit := do(t, http.MethodGet, sys.arbiter+"/v1/customers/C-2/audit?type=case_resolved", branchKey, nil)
		evs := audit["events"].([]any)
		if len(evs) != 1 || evs[0].(map[string]any)["actor"] != "ops" || evs[0].(map[string]any)["note"] != "customer keeps the loan; card closed" {
			t.Errorf("case_resolved events = %v", evs)
		}
	})

	for _, tc := range []struct {
		name      string
		failPage  int
		customers []string
		error     string
	}{
		{"a feed that fails on page 2 releases nothing", 2, []string{"O-1", "O-2", "O-3"}, "502"},
		{"an empty feed releases nothing", 0, nil, "listed no customers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(sys.holds(t, "O-9")) == 0 {
				put("O-9", "overdraft") // an orphan, if the feed were whole
			}
			sys.fake.set(tc.failPage, tc.customers...)
			run := sys.reconcile(t)
			src := sourceOf(run, "overdraft")
			if src["status"] != "failed" || !strings.Contains(fmt.Sprint(src["error"]), tc.error) {
				t.Errorf("overdraft source = %v, want failed with %q", src, tc.error)
			}
			if got := sys.holds(t, "O-9"); len(got) != 1 {
				t.Errorf("O-9 holds %v after a partial feed, want its overdraft kept", got)
			}
			for _, f := range run["findings"].([]any) { // C-3's loan is still an orphan, awaiting its second sighting
				if f := f.(map[string]any); f["kind"] == "orphan_grant" && f["customer_id"] != "C-3" {
					t.Errorf("orphan on a partial feed: %v", f)
				}
			}
			if src := sourceOf(run, "credit_card"); src["status"] != "done" {
				t.Errorf("card source = %v, want done", src)
			}
		})
	}
}
