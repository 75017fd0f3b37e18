package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/validation/pgarchive/pgtest"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// webhookSecret signs the announcements of the tests' subscribers: whsec_
// and the base64 of a 32-byte key.
const webhookSecret = "whsec_ZTJlLXdlYmhvb2stc2lnbmluZy1rZXktMzItYnl0ZXM="

// Timings of the webhook tests: a short hold so expiries come quickly, and
// an export interval short enough that the documented bound (TTL + about
// two intervals + the sender's 500ms poll) stays well under TTL + 3s.
const (
	webhookHoldTTL        = 2 * time.Second
	webhookExportInterval = 250 * time.Millisecond
	expiryBound           = webhookHoldTTL + 3*time.Second
)

// Receiver answers, per attempt at one record (counted by webhook-id).
const (
	answerOK    = "ok"    // 204
	answer500   = "500"   // 500 Internal Server Error
	answerDrop  = "drop"  // reads the request, then closes the connection without a word
	answerReset = "reset" // reads the request, then resets the connection (TCP RST)
)

// receiver is a webhook subscriber in the test: it verifies every request
// with products/client, answers each record's attempts by plan (the last
// entry repeats), and keeps, per customer, the records in the order of
// their first successful delivery.
type receiver struct {
	verifier *client.WebhookVerifier
	plan     []string

	mu        sync.Mutex
	attempts  map[string]int                   // webhook-id → requests received
	idOf      map[string]string                // "<customer>#<seq>" → the webhook-id it came with
	bad       []string                         // requests that did not verify, or changed their id
	delivered map[string][]client.WebhookEvent // customer → first successes, in arrival order
	firstOK   map[string]bool                  // webhook-id → answered 2xx once
	arrived   chan client.WebhookEvent         // each record's first success
	serverURL string
}

func newReceiver(t *testing.T, plan ...string) *receiver {
	t.Helper()
	v, err := client.NewWebhookVerifier(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{verifier: v, plan: plan, attempts: map[string]int{}, idOf: map[string]string{},
		delivered: map[string][]client.WebhookEvent{}, firstOK: map[string]bool{}, arrived: make(chan client.WebhookEvent, 100)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	r.serverURL = srv.URL
	return r
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	ev, err := rc.verifier.Parse(r.Header, body)
	rc.mu.Lock()
	if err != nil {
		rc.bad = append(rc.bad, fmt.Sprintf("%s: %v", r.Header.Get("webhook-id"), err))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	key := fmt.Sprintf("%s#%d", ev.Data.CustomerID, ev.Data.Seq)
	if id, seen := rc.idOf[key]; seen && id != ev.ID {
		rc.bad = append(rc.bad, fmt.Sprintf("%s came again as webhook-id %q, first as %q", key, ev.ID, id))
	}
	rc.idOf[key] = ev.ID
	n := rc.attempts[ev.ID]
	rc.attempts[ev.ID] = n + 1
	answer := rc.plan[min(n, len(rc.plan)-1)]
	if answer == answerOK && !rc.firstOK[ev.ID] {
		rc.firstOK[ev.ID] = true
		rc.delivered[ev.Data.CustomerID] = append(rc.delivered[ev.Data.CustomerID], ev)
		rc.arrived <- ev
	}
	rc.mu.Unlock()

	switch answer {
	case answerOK:
		w.WriteHeader(http.StatusNoContent)
	case answer500:
		http.Error(w, "receiver broken", http.StatusInternalServerError)
	case answerDrop, answerReset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok && answer == answerReset {
			_ = tc.SetLinger(0) // Close then sends RST instead of FIN
		}
		conn.Close()
	}
}

// webhookSystem is arbiter on real Redis and PostgreSQL, with a clients
// file whose webhook subscriber is given by the test.
type webhookSystem struct {
	arbiter string
}

// webhookPolicy holds credit cards for webhookHoldTTL; feedURL, when set,
// is the holdings feed of both products for on-demand reconciliations.
func webhookPolicy(feedURL string) string {
	p := fmt.Sprintf(`products:
  credit_card:   { hold_ttl: %s, redeemers: [card-service] }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
exclusive:
  - [credit_card, personal_loan]
`, webhookHoldTTL)
	if feedURL != "" {
		p += fmt.Sprintf(`reconcile:
  sources:
    - { product: credit_card,   url: %s/credit_card,   name: card-feed }
    - { product: personal_loan, url: %s/personal_loan, name: loan-feed }
`, feedURL, feedURL)
	}
	return p
}

// startWebhookArbiter starts arbiter on real Redis and PostgreSQL with the
// archive on, clients (the YAML lines after "clients:") and policy.
func startWebhookArbiter(t *testing.T, clients, policy string) *webhookSystem {
	t.Helper()
	pg := pgtest.Start(t)
	rds := redistest.MustStartRedis(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	arb := proctest.Start(t, arbiterBin, []string{"-addr", "127.0.0.1:0", "-redis-url", rds.URL(),
		"-clients", write("clients.yaml", "clients:\n"+clients), "-policy", write("policy.yaml", policy),
		"-signing-key", key, "-log-level", "warn",
		"-archive-url", pg.DSN(), "-export-interval", webhookExportInterval.String()}, nil)
	proctest.WaitReady(t, arb.URL)
	return &webhookSystem{arbiter: arb.URL}
}

// check places a check of product for customer as branch-portal and
// returns its answer.
func (s *webhookSystem) check(t *testing.T, customer, product string) map[string]any {
	t.Helper()
	st, c := do(t, http.MethodPost, s.arbiter+"/v1/checks", branchKey, map[string]string{"customer_id": customer, "product": product})
	if st != http.StatusCreated {
		t.Fatalf("check %s %s: %d %v", customer, product, st, c)
	}
	return c
}

// must calls arbiter and fails unless it answers want.
func (s *webhookSystem) must(t *testing.T, want int, method, path, key string, body any) map[string]any {
	t.Helper()
	st, out := do(t, method, s.arbiter+path, key, body)
	if st != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
	}
	return out
}

// holdingsFeed serves, per product (/credit_card, /personal_loan), the
// customers listed in it, as arbiter's reconciler reads a holdings feed.
type holdingsFeed map[string][]string

func (f holdingsFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	product := strings.TrimPrefix(r.URL.Path, "/")
	type holding struct {
		CustomerID string `json:"customer_id"`
		Product    string `json:"product"`
		IssuedAt   string `json:"issued_at"`
	}
	resp := struct {
		Holdings []holding `json:"holdings"`
		Next     string    `json:"next"`
	}{Holdings: []holding{}}
	if r.URL.Query().Get("after") == "" {
		for _, c := range f[product] {
			resp.Holdings = append(resp.Holdings, holding{CustomerID: c, Product: product, IssuedAt: "2020-01-01T00:00:00Z"})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// listenerClient is the subscriber's line in the clients file: a checker
// whose webhook is url, for every type.
func listenerClient(url string) string {
	return fmt.Sprintf("  - {id: listener, key: e2e-listener-key, roles: [checker], webhook: {url: %q, secret: %s}}\n", url, webhookSecret)
}

const webhookClients = `  - {id: branch-portal, key: ` + branchKey + `, roles: [checker]}
  - {id: card-service, key: ` + cardKey + `, roles: [checker, redeemer]}
  - {id: loan-service, key: ` + loanKey + `, roles: [checker, redeemer]}
  - {id: ops, key: ` + opsKey + `, roles: [admin]}
`

// TestWebhooksReachAFailingReceiver drives every announced type through
// arbiter's API to a receiver that fails each record three times (a 500,
// a connection closed without an answer, a connection reset) before
// taking it, and checks that each record still arrives, signed, in its
// customer's order, under one webhook-id however often it is sent.
//
// The receiver closes the connection where a real one might hang: the
// sender's per-attempt timeout is 10s and not configurable, and to the
// sender both are the same failure (no answer), after which it backs off.
func TestWebhooksReachAFailingReceiver(t *testing.T) {
	t.Parallel() // each has its own servers, and mostly waits on timers
	rc := newReceiver(t, answer500, answerDrop, answerReset, answerOK)
	feed := httptest.NewServer(holdingsFeed{"credit_card": {"W-CASE"}, "personal_loan": {"W-CASE"}})
	t.Cleanup(feed.Close)
	s := startWebhookArbiter(t, webhookClients+listenerClient(rc.serverURL), webhookPolicy(feed.URL))

	start := time.Now()
	// W-HOLD: a check cancelled by its placer, then one left to expire.
	c := s.check(t, "W-HOLD", "credit_card")
	s.must(t, http.StatusNoContent, http.MethodDelete, "/v1/checks/"+c["check_id"].(string), branchKey, nil)
	s.check(t, "W-HOLD", "credit_card")
	// W-GRANT: a check redeemed by card-service, then the card closed.
	c = s.check(t, "W-GRANT", "credit_card")
	s.must(t, http.StatusCreated, http.MethodPost, "/v1/redemptions", cardKey, map[string]string{"token": c["token"].(string)})
	s.must(t, http.StatusNoContent, http.MethodDelete, "/v1/customers/W-GRANT/products/credit_card", cardKey, nil)
	// W-IMPORT: a loan issued outside arbiter, imported by an admin.
	s.must(t, http.StatusCreated, http.MethodPut, "/v1/customers/W-IMPORT/products/personal_loan", opsKey, map[string]string{})
	// W-CASE: both feeds list it, and a card and a loan exclude each
	// other: the reconciliation opens a case, an admin resolves it.
	run := s.must(t, http.StatusAccepted, http.MethodPost, "/v1/reconciliations", opsKey, nil)
	waitFor(t, 20*time.Second, "reconciliation finished", func() bool {
		_, r := do(t, http.MethodGet, s.arbiter+"/v1/reconciliations/"+run["id"].(string), opsKey, nil)
		return r["status"] != "running"
	})
	s.must(t, http.StatusOK, http.MethodPost, "/v1/cases/W-CASE/resolution", opsKey, map[string]string{"note": "customer keeps the loan"})

	want := map[string][]string{
		"W-HOLD":   {client.WebhookHoldCancelled, client.WebhookHoldExpired},
		"W-GRANT":  {client.WebhookGrantReleased},
		"W-IMPORT": {client.WebhookGrantImported},
		"W-CASE":   {client.WebhookCaseOpened, client.WebhookCaseResolved},
	}
	total := 0
	for _, ts := range want {
		total += len(ts)
	}
	// Three failures cost about 0.5+1+2 .. 1+2+4s of backoff per record,
	// and W-HOLD's and W-CASE's two records go one after the other: about
	// 20s at worst, with room for a loaded machine.
	const within = 60 * time.Second
	deadline := time.After(within)
	for n := 0; n < total; n++ {
		select {
		case <-rc.arrived:
		case <-deadline:
			rc.mu.Lock()
			defer rc.mu.Unlock()
			t.Fatalf("%d of %d records delivered within %v: %v (attempts %v)", n, total, within, typesOf(rc.delivered), rc.attempts)
		}
	}
	t.Logf("all %d records delivered %v after the first action", total, time.Since(start).Round(time.Millisecond))

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		t.Errorf("requests that failed verification or changed id: %v", rc.bad)
	}
	if got := typesOf(rc.delivered); !mapsEqual(got, want) {
		t.Errorf("first deliveries per customer = %v, want %v", got, want)
	}
	for customer, evs := range rc.delivered {
		for i := 1; i < len(evs); i++ {
			if evs[i].Data.Seq <= evs[i-1].Data.Seq {
				t.Errorf("%s: %s (seq %d) delivered after %s (seq %d)", customer, evs[i].Type, evs[i].Data.Seq, evs[i-1].Type, evs[i-1].Data.Seq)
			}
		}
		for _, ev := range evs {
			if got := rc.attempts[ev.ID]; got < len(rc.plan) {
				t.Errorf("%s (%s): %d requests, want at least %d (the receiver's plan)", ev.ID, ev.Type, got, len(rc.plan))
			}
			if ev.Data.CustomerID != customer || ev.ID != fmt.Sprintf("%s/%d", customer, ev.Data.Seq) {
				t.Errorf("event %s: customer %s seq %d", ev.ID, ev.Data.CustomerID, ev.Data.Seq)
			}
		}
	}
}

func typesOf(m map[string][]client.WebhookEvent) map[string][]string {
	out := map[string][]string{}
	for c, evs := range m {
		for _, ev := range evs {
			out[c] = append(out[c], ev.Type)
		}
	}
	return out
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestUntouchedHoldAnnouncedExpired leaves a hold that nobody reads again
// to expire: the sweeper records the expiry, and the webhook announces it
// within the documented bound (TTL + about two export intervals + the
// sender's poll), stamped with the hold's expiry time.
func TestUntouchedHoldAnnouncedExpired(t *testing.T) {
	t.Parallel() // each has its own servers, and mostly waits on timers
	rc := newReceiver(t, answerOK)
	s := startWebhookArbiter(t, webhookClients+listenerClient(rc.serverURL), webhookPolicy(""))

	start := time.Now()
	c := s.check(t, "W-UNTOUCHED", "credit_card")
	expires, err := time.Parse(time.RFC3339Nano, c["expires_at"].(string))
	if err != nil {
		t.Fatalf("expires_at %v: %v", c["expires_at"], err)
	}
	var ev client.WebhookEvent
	select {
	case ev = <-rc.arrived:
	case <-time.After(time.Until(start.Add(expiryBound))):
		t.Fatalf("no announcement within %v of the check (hold TTL %v)", expiryBound, webhookHoldTTL)
	}
	t.Logf("announced %v after the check", time.Since(start).Round(time.Millisecond))
	if ev.Type != client.WebhookHoldExpired || ev.Data.CustomerID != "W-UNTOUCHED" || ev.Data.CheckID != c["check_id"] {
		t.Fatalf("announcement = %s %s check %s, want hold_expired W-UNTOUCHED check %v", ev.Type, ev.Data.CustomerID, ev.Data.CheckID, c["check_id"])
	}
	if want := expires.Truncate(time.Millisecond); !ev.Data.At.Equal(want) {
		t.Errorf("data.at = %v, want the hold's expiry %v", ev.Data.At, want)
	}
	audit := s.must(t, http.StatusOK, http.MethodGet, "/v1/customers/W-UNTOUCHED/audit", branchKey, nil)
	var types []string
	for _, e := range audit["events"].([]any) {
		types = append(types, e.(map[string]any)["type"].(string))
	}
	if !slices.Contains(types, "expired") {
		t.Errorf("audit of W-UNTOUCHED = %v, want an expired event", types)
	}
}

// TestProductServiceDropsExpiredApplication: card-service keeps a pending
// row for an application whose redemption got no answer (a proxy between
// it and arbiter answers every redemption 503, as an overloaded gateway
// would). When the hold expires, arbiter's hold_expired announcement makes
// card-service drop the row at once, long before its own reconciliation
// (an hour here) would have.
func TestProductServiceDropsExpiredApplication(t *testing.T) {
	t.Parallel() // each has its own servers, and mostly waits on timers

	// card-service starts first, as its URL goes into arbiter's clients
	// file; it asks arbiter nothing until it has an application, and by
	// then the proxy knows arbiter's URL.
	var forward atomic.Pointer[httputil.ReverseProxy]
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := forward.Load()
		switch {
		case f == nil:
			http.Error(w, "arbiter not started yet", http.StatusBadGateway)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/redemptions":
			http.Error(w, "gateway overloaded", http.StatusServiceUnavailable)
		default:
			f.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(proxy.Close)
	db := filepath.Join(t.TempDir(), "card.db")
	svc := proctest.Start(t, productsvcBin, []string{"-addr", "127.0.0.1:0", "-product", "credit_card", "-id", "card-service",
		"-db", db, "-arbiter-url", proxy.URL, "-log-level", "warn", "-reconcile-interval", "1h"},
		[]string{"PRODUCTSVC_ARBITER_KEY=" + cardKey, "PRODUCTSVC_WEBHOOK_SECRET=" + webhookSecret})

	card := fmt.Sprintf("  - {id: card-service, key: %s, roles: [checker, redeemer], webhook: {url: %q, secret: %s, events: [hold_expired, hold_cancelled]}}\n",
		cardKey, svc.URL+"/webhooks/arbiter", webhookSecret)
	clients := strings.Replace(webhookClients, "  - {id: card-service, key: "+cardKey+", roles: [checker, redeemer]}\n", card, 1)
	s := startWebhookArbiter(t, clients, webhookPolicy(""))
	target, err := url.Parse(s.arbiter)
	if err != nil {
		t.Fatal(err)
	}
	forward.Store(httputil.NewSingleHostReverseProxy(target))
	proctest.WaitReady(t, svc.URL)

	start := time.Now()
	c := s.check(t, "W-PENDING", "credit_card")
	a := call(t.Context(), http.MethodPost, svc.URL+"/v1/applications", map[string]string{"customer_id": "W-PENDING", "token": c["token"].(string)})
	if a.Status != http.StatusServiceUnavailable || a.Body["pending"] != true {
		t.Fatalf("application with redemptions failing = %s, want 503 pending", a)
	}
	if rows := readDB(t, db, "pending"); rows["W-PENDING"].CheckID != c["check_id"] {
		t.Fatalf("pending rows = %v, want W-PENDING's application of check %v", rows, c["check_id"])
	}
	waitFor(t, time.Until(start.Add(expiryBound+time.Second)), "pending row dropped after hold_expired", func() bool {
		rows, err := queryDB(db, "pending")
		return err == nil && len(rows) == 0
	})
	t.Logf("pending row dropped %v after the check (hold TTL %v)", time.Since(start).Round(time.Millisecond), webhookHoldTTL)
	if rows := readDB(t, db, "products"); len(rows) != 0 {
		t.Errorf("products = %v, want none (the hold expired unredeemed)", rows)
	}
}
