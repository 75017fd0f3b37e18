package e2e_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// API keys of the clients file the test writes.
const (
	branchKey = "e2e-branch-portal-key"
	cardKey   = "e2e-card-service-key"
	loanKey   = "e2e-loan-service-key"
)

const clientsYAML = `clients:
  - {id: branch-portal, key: ` + branchKey + `, roles: [checker]}
  - {id: card-service, key: ` + cardKey + `, roles: [checker, redeemer]}
  - {id: loan-service, key: ` + loanKey + `, roles: [checker, redeemer]}
`

// system is arbiter in production mode on a real redis-server, plus the
// card and loan services.
type system struct {
	dir     string
	arbiter *proctest.Proc
	card    *service
	loan    *service
	branch  *client.Client // branch-portal: a checker
	ledger  *client.Client // reads arbiter's ledger (card-service key)
}

// service is one running product service and its database file.
type service struct {
	proc    *proctest.Proc
	product string
	id      string
	key     string
	db      string
}

func startSystem(t *testing.T) *system {
	t.Helper()
	rds := redistest.MustStartRedis(t)
	dir := t.TempDir()
	clients := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(clients, []byte(clientsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	arb := proctest.Start(t, arbiterBin, []string{"-addr", "127.0.0.1:0", "-redis-url", rds.URL(),
		"-clients", clients, "-signing-key", key, "-log-level", "warn"}, nil)
	proctest.WaitReady(t, arb.URL)
	s := &system{dir: dir, arbiter: arb, branch: newClient(t, arb.URL, branchKey, "branch-portal"),
		ledger: newClient(t, arb.URL, cardKey, "card-service")}
	s.card = s.startService(t, "credit_card", "card-service", cardKey, "card.db", "")
	s.loan = s.startService(t, "personal_loan", "loan-service", loanKey, "loan.db", "")
	return s
}

// startService starts a product service on database file db (in the
// system's directory) with fault hook fault ("" for none).
func (s *system) startService(t *testing.T, product, id, key, db, fault string) *service {
	t.Helper()
	path := filepath.Join(s.dir, db)
	env := []string{"PRODUCTSVC_ARBITER_KEY=" + key, "PRODUCTSVC_FAULT=" + fault}
	p := proctest.Start(t, productsvcBin, []string{"-addr", "127.0.0.1:0", "-product", product, "-id", id,
		"-db", path, "-arbiter-url", s.arbiter.URL, "-log-level", "warn"}, env)
	proctest.WaitReady(t, p.URL)
	return &service{proc: p, product: product, id: id, key: key, db: path}
}

func writeSigningKey(tb testing.TB, path string) {
	tb.Helper()
	k, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func newClient(tb testing.TB, base, key, id string) *client.Client {
	tb.Helper()
	c, err := client.New(client.Config{BaseURL: base, APIKey: key, ClientID: id})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// answer is a product service's answer: the status and the JSON body
// (a product, or a problem document).
type answer struct {
	Status int
	Body   map[string]any
}

func (a answer) str(k string) string { s, _ := a.Body[k].(string); return s }

func (a answer) String() string { return fmt.Sprintf("%d %v", a.Status, a.Body) }

// call sends a JSON request to a product service. A transport error is
// returned as status 0 with the error in Body["error"].
func call(ctx context.Context, method, url string, body any) answer {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{Body: map[string]any{"error": err.Error()}}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{Body: map[string]any{"error": err.Error()}}
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode, Body: map[string]any{}}
	_ = json.NewDecoder(resp.Body).Decode(&a.Body)
	return a
}

func (s *service) apply(ctx context.Context, body map[string]string) answer {
	return call(ctx, http.MethodPost, s.proc.URL+"/v1/applications", body)
}

func (s *service) applyOnline(ctx context.Context, customer string) answer {
	return call(ctx, http.MethodPost, s.proc.URL+"/v1/applications/online", map[string]string{"customer_id": customer})
}

// row is one products row of a service's SQLite file.
type row struct {
	CheckID string
	Fence   int64
}

// readDB reads a service's database file directly, as a separate reader:
// customer_id, check_id and fence of every row of table (fences has no
// check_id; it reads as "").
func readDB(tb testing.TB, path, table string) map[string]row {
	tb.Helper()
	out, err := queryDB(path, table)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// queryDB is readDB for goroutines other than the test's, which may not
// call Fatal.
func queryDB(path, table string) (map[string]row, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	q := "SELECT customer_id, check_id, fence FROM " + table
	if table == "fences" {
		q = "SELECT customer_id, '', fence FROM fences"
	}
	rows, err := db.Query(q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	out := map[string]row{}
	for rows.Next() {
		var (
			c string
			r row
		)
		if err := rows.Scan(&c, &r.CheckID, &r.Fence); err != nil {
			return nil, err
		}
		out[c] = r
	}
	return out, rows.Err()
}

// holdings reads GET /v1/holdings page by page.
func (s *service) holdings(tb testing.TB) map[string]row {
	tb.Helper()
	out := map[string]row{}
	after := ""
	for range 1000 {
		var page struct {
			Holdings []struct {
				CustomerID string `json:"customer_id"`
				CheckID    string `json:"check_id"`
				Fence      int64  `json:"fence"`
			} `json:"holdings"`
			Next string `json:"next"`
		}
		resp, err := http.Get(s.proc.URL + "/v1/holdings?limit=25&after=" + after)
		if err != nil {
			tb.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Fatalf("holdings: %d %v", resp.StatusCode, err)
		}
		for _, h := range page.Holdings {
			out[h.CustomerID] = row{CheckID: h.CheckID, Fence: h.Fence}
		}
		if page.Next == "" {
			return out
		}
		after = page.Next
	}
	tb.Fatal("holdings: too many pages")
	return nil
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
