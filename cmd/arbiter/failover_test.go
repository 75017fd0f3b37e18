package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The fault tests: a race load of checks, redemptions and releases runs
// through three arbiter instances while Redis loses a node, then every
// acknowledged grant is looked up and the recorded history is checked by
// Porcupine (history_test.go). Loopback only, bounded in time.

const (
	faultCardKey = "fault-card-key-0001"
	faultLoanKey = "fault-loan-key-0001"
	// faultCustomers live on the node that is killed; two workers each
	// (a card and a loan service) race for them.
	faultCustomers = 24
	faultInstances = 3
)

// faultPolicy is the default policy with short holds, so that holds lost
// or orphaned by the fault expire within the test.
const faultPolicy = `products:
  credit_card:   { hold_ttl: 3s, redeemers: [card-service] }
  personal_loan: { hold_ttl: 3s, redeemers: [loan-service] }
exclusive:
  - [credit_card, personal_loan]
`

// faultEnv is a production configuration on redisURL with WAIT waitReplicas.
func faultEnv(tb testing.TB, redisURL string, waitReplicas int) map[string]string {
	tb.Helper()
	return map[string]string{
		"ARBITER_REDIS_URL":           redisURL,
		"ARBITER_SIGNING_KEY":         signingKeyFile(tb),
		"ARBITER_POLICY":              writeFile(tb, "policy.yaml", faultPolicy),
		"ARBITER_REDIS_WAIT_REPLICAS": strconv.Itoa(waitReplicas),
		"ARBITER_REDIS_WAIT_TIMEOUT":  "500ms",
		"ARBITER_LOG_LEVEL":           "error",
		"ARBITER_CLIENTS": writeFile(tb, "clients.yaml", `clients:
  - { id: card-service, key: `+faultCardKey+`, roles: [checker, redeemer] }
  - { id: loan-service, key: `+faultLoanKey+`, roles: [checker, redeemer] }
`),
	}
}

// faultLoad is the load and what it observed.
type faultLoad struct {
	bases  []string
	client *http.Client
	hist   *history

	mu    sync.Mutex
	acked map[string]ackedGrant // check id → grant acknowledged with 201 or 200

	ops, unknown atomic.Int64
}

type ackedGrant struct{ customer, product string }

func newFaultLoad(tb testing.TB, env map[string]string) *faultLoad {
	tb.Helper()
	return newFaultLoadOn(tb, env, faultInstances)
}

// newFaultLoadOn is newFaultLoad with the given number of arbiter instances.
func newFaultLoadOn(tb testing.TB, env map[string]string, instances int) *faultLoad {
	tb.Helper()
	l := &faultLoad{hist: newHistory(), acked: map[string]ackedGrant{}}
	for range instances {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		l.bases = append(l.bases, startRun(tb, e).base)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	tb.Cleanup(tr.CloseIdleConnections)
	l.client = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	return l
}

// do sends one request to a random instance; status 0 means no answer.
func (l *faultLoad) do(method, path, key string, body any) (int, map[string]any) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, l.bases[rand.IntN(len(l.bases))]+path, rd)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// run starts two workers per customer and returns a function that stops
// them and waits for them.
func (l *faultLoad) run(tb testing.TB, customers []string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, c := range customers {
		for w, svc := range []struct{ product, key string }{{"credit_card", faultCardKey}, {"personal_loan", faultLoanKey}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.worker(ctx, tb, 2*i+w, c, svc.product, svc.key)
			}()
		}
	}
	// Also at cleanup: a test that fails before calling stop must not
	// leave workers logging after it ended.
	stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	tb.Cleanup(stop)
	return stop
}

// worker loops check → redeem → release for one product of one customer,
// recording each operation. Answers that may or may not have taken effect
// are recorded as unknown; a redemption is retried until it has a definite
// answer (the retry of an applied one replays it).
func (l *faultLoad) worker(ctx context.Context, tb testing.TB, client int, customer, product, key string) {
	for cycle := 0; cycle < 10000 && ctx.Err() == nil; cycle++ {
		call := time.Now()
		status, body := l.do("POST", "/v1/checks", key, map[string]string{"customer_id": customer, "product": product})
		in := opInput{Kind: "check", Product: product}
		var id, token string
		switch status {
		case http.StatusCreated:
			id, token = body["check_id"].(string), body["token"].(string)
			l.note(client, customer, in, opOutput{Result: "held", CheckID: id}, call)
		case http.StatusConflict:
			// The customer is taken; ask again soon, not at once: a worker
			// refused every 5 ms while the master has no replica (10–25 s)
			// made a history too large for Porcupine on a loaded machine.
			l.note(client, customer, in, opOutput{Result: "refused"}, call)
			pause(ctx, 100*time.Millisecond)
			continue
		default:
			// Likewise for an unknown answer: each is concurrent with the
			// rest of the history, and the election yields one per
			// attempt; a worker asking every 20 ms made Porcupine's search
			// run out of its budget on a loaded machine.
			l.note(client, customer, in, opOutput{Result: "unknown"}, call)
			pause(ctx, 100*time.Millisecond)
			continue
		}
		in = opInput{Kind: "redeem", Product: product, CheckID: id}
		out := l.definite(ctx, redeemPatience, func() string { return l.redeem(tb, customer, product, key, id, token) })
		if out.Result == "replay" {
			out.Result = "granted" // the retry of an attempt that was applied
		}
		l.note(client, customer, in, out, call)
		if out.Result != "granted" {
			continue
		}
		in, call = opInput{Kind: "release", Product: product}, time.Now()
		l.note(client, customer, in, l.definite(ctx, releasePatience, func() string { return l.release(tb, customer, product, key) }), call)
	}
}

// How long a worker retries an operation for a definite answer. A
// release under WAIT is answered not_durable for as long as the master has
// no replica (after a failover, until the old master rejoins: 10–25 s), and
// an operation that never gets a definite answer is unknown without bound
// (concurrent with the rest of the history), which Porcupine pays for
// dearly; so a release waits out the rejoin.
const (
	redeemPatience  = 5 * time.Second
	releasePatience = 40 * time.Second
)

// definite retries op until its answer is definite, for at most patience,
// and returns the outcome of the whole retried operation: the definite
// answer, or unknown when there was none. A redemption retried by the same
// client is one operation (the script replays it once applied); a release
// whose first attempts were unknown and last one "not found" may have been
// applied by an earlier attempt, so it is unknown, but bounded in time.
func (l *faultLoad) definite(ctx context.Context, patience time.Duration, op func() string) opOutput {
	var tries []string
	for deadline := time.Now().Add(patience); time.Now().Before(deadline) && ctx.Err() == nil; {
		res := op()
		tries = append(tries, res)
		if res != "unknown" {
			if res == "not_found" && len(tries) > 1 {
				return opOutput{Result: "unknown", Bounded: true}
			}
			return opOutput{Result: res, Bounded: true}
		}
		pause(ctx, 20*time.Millisecond)
	}
	return opOutput{Result: "unknown"}
}

// redeem tries the redemption once and returns its outcome.
func (l *faultLoad) redeem(tb testing.TB, customer, product, key, id, token string) string {
	status, body := l.do("POST", "/v1/redemptions", key, map[string]string{"token": token})
	out := opOutput{Result: "unknown"}
	switch {
	case status == http.StatusCreated:
		out.Result = "granted"
	case status == http.StatusOK:
		out.Result = "replay"
	case status == http.StatusConflict && (body["reason"] == "conflicting_product" || body["reason"] == "already_holds_product"):
		out.Result = "conflict"
	case status == http.StatusGone:
		out.Result = "expired"
	case status >= 400 && status < 500:
		tb.Errorf("redeem %s: %d %v", id, status, body)
		out.Result = "expired" // not a grant; the model decides
	}
	if out.Result == "granted" || out.Result == "replay" {
		l.mu.Lock()
		l.acked[id] = ackedGrant{customer, product}
		l.mu.Unlock()
	}
	return out.Result
}

// release tries the release once and returns its outcome.
func (l *faultLoad) release(tb testing.TB, customer, product, key string) string {
	status, body := l.do("DELETE", "/v1/customers/"+customer+"/products/"+product, key, nil)
	out := opOutput{Result: "unknown"}
	switch status {
	case http.StatusNoContent:
		out.Result = "ok"
	case http.StatusNotFound:
		out.Result = "not_found"
	default:
		if status >= 400 && status < 500 {
			tb.Errorf("release %s %s: %d %v", customer, product, status, body)
		}
	}
	return out.Result
}

func (l *faultLoad) note(client int, customer string, in opInput, out opOutput, call time.Time) {
	l.ops.Add(1)
	if out.Result == "unknown" {
		l.unknown.Add(1)
	}
	l.hist.record(client, customer, in, out, call)
}

func (l *faultLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// ackWait bounds waitAcked. Progress after a fault takes well under a
// second on an idle machine; the bound is for a loaded CI runner, where a
// restarted redis-server and the workers' backoff can take seconds.
const ackWait = 60 * time.Second

// waitAcked waits until n more grants were acknowledged, and fails the test
// if that takes longer than ackWait: a load that stops making progress
// after a fault is a failure, and one that is merely slow must not be
// cut short (the runs' minimum-grant checks depend on these waits).
func (l *faultLoad) waitAcked(t *testing.T, n int) {
	t.Helper()
	start := l.ackedCount()
	deadline := time.Now().Add(ackWait)
	for l.ackedCount() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d more grants acknowledged within %v", l.ackedCount()-start, n, ackWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// faultReport is what one fault run measured.
type faultReport struct {
	Mode              string `json:"mode"`
	Operations        int64  `json:"operations"`
	Unknown           int64  `json:"unknown_outcomes"`
	AckedGrants       int    `json:"acknowledged_grants"`
	LostGrants        int    `json:"lost_grants"`
	DoubleGrants      int    `json:"double_grants"`
	PorcupineResult   string `json:"porcupine"`
	PorcupineArtifact string `json:"porcupine_artifact,omitempty"`
}

// verify looks up every acknowledged grant's check (a lost grant's check
// is gone or not redeemed), counts customers holding both products, and
// checks the history.
func (l *faultLoad) verify(tb testing.TB, mode string, customers []string) faultReport {
	tb.Helper()
	r := faultReport{Mode: mode, Operations: l.ops.Load(), Unknown: l.unknown.Load(), AckedGrants: l.ackedCount()}
	l.mu.Lock()
	acked := l.acked
	l.mu.Unlock()
	for id, g := range acked {
		status, body := l.retryGet(tb, "/v1/checks/"+id)
		if status == http.StatusNotFound || body["status"] != "redeemed" {
			r.LostGrants++
			tb.Logf("lost: %s %s %s: %d %v", g.customer, g.product, id, status, body)
		}
	}
	for _, c := range customers {
		_, body := l.retryGet(tb, "/v1/customers/"+c)
		if products, _ := body["products"].([]any); len(products) > 1 {
			r.DoubleGrants++
			tb.Errorf("customer %s holds %d exclusive products: %v", c, len(products), body)
		}
	}
	res, path := l.hist.check(tb, mode)
	r.PorcupineResult, r.PorcupineArtifact = string(res), path
	writeReport(tb, r)
	return r
}

func (l *faultLoad) retryGet(tb testing.TB, path string) (int, map[string]any) {
	tb.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		status, body := l.do("GET", path, faultCardKey, nil)
		if status > 0 && status < 500 {
			return status, body
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s: %d %v", path, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeReport logs r and appends it to artifacts/failover.jsonl.
func writeReport(tb testing.TB, r faultReport) {
	tb.Helper()
	line, _ := json.Marshal(r)
	tb.Logf("fault report: %s", line)
	dir := filepath.Join("..", "..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Logf("artifacts: %v", err)
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "failover.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Logf("artifacts: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\n", line)
}

// customersOn returns n customer ids whose keys live on the cluster master m.
func customersOn(tb testing.TB, c *redistest.Cluster, m *redistest.Server, n int) []string {
	tb.Helper()
	rdb := c.Client(tb)
	ctx := context.Background()
	ranges, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for i := 0; len(out) < n && i < 100000; i++ {
		id := fmt.Sprintf("F-%d", i)
		slot := rdb.ClusterKeySlot(ctx, "arb:{"+id+"}:meta").Val()
		for _, r := range ranges {
			if int64(r.Start) <= slot && slot <= int64(r.End) && r.Nodes[0].Addr == m.Addr {
				out = append(out, id)
			}
		}
	}
	if len(out) < n {
		tb.Fatalf("found %d customers on %s, want %d", len(out), m.Addr, n)
	}
	return out
}

// TestFailoverCluster kills the master that holds every customer of the
// load, lets its replica be promoted, brings it back as a replica, and
// checks the outcome with WAIT 1 (no acknowledged grant may be lost) and
// without WAIT (losses are measured and reported: replication is
// asynchronous). No customer may ever hold both products, in either mode.
func TestFailoverCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	for _, wait := range []int{1, 0} {
		t.Run(fmt.Sprintf("wait%d", wait), func(t *testing.T) {
			c := redistest.MustStartCluster(t)
			victim := c.Master(t, "arb:{F-0}:meta")
			customers := customersOn(t, c, victim, faultCustomers)
			l := newFaultLoad(t, faultEnv(t, c.URL(), wait))
			stop := l.run(t, customers)
			l.waitAcked(t, 60)

			replica := c.ReplicaOf(t, victim)
			victim.Kill()
			killed := time.Now()
			c.WaitHealthy(t, 2*redistest.ClusterMasters-1)
			if got := c.Master(t, "arb:{"+customers[0]+"}:meta"); got != replica {
				t.Fatalf("promoted %s, want the replica %s", got.Addr, replica.Addr)
			}
			t.Logf("replica promoted %v after the kill", time.Since(killed).Round(time.Millisecond))
			victim.Restart(t)
			c.WaitHealthy(t, 2*redistest.ClusterMasters)
			t.Logf("old master back as a replica %v after the kill", time.Since(killed).Round(time.Millisecond))
			l.waitAcked(t, 60)
			stop()
			t.Logf("load stopped %v after the kill", time.Since(killed).Round(time.Millisecond))

			r := l.verify(t, fmt.Sprintf("cluster-wait%d", wait), customers)
			if r.AckedGrants < 60 {
				t.Fatalf("only %d acknowledged grants: the load did not run", r.AckedGrants)
			}
			if r.DoubleGrants != 0 {
				t.Fatalf("%d customers hold both exclusive products", r.DoubleGrants)
			}
			switch {
			case wait > 0 && r.LostGrants != 0:
				t.Fatalf("WAIT %d lost %d of %d acknowledged grants", wait, r.LostGrants, r.AckedGrants)
			case r.LostGrants == 0 && r.PorcupineResult != string(porcupine.Ok):
				t.Fatalf("porcupine: %s (visualisation: %s)", r.PorcupineResult, r.PorcupineArtifact)
			case r.LostGrants > 0 && r.PorcupineResult == string(porcupine.Ok):
				t.Fatalf("porcupine accepted a history with %d lost grants", r.LostGrants)
			}
		})
	}
}

// TestFailoverSingleNodeAOF restarts a single Redis with appendfsync always
// (SIGKILL, then start from the AOF) twice under the load: no acknowledged
// grant may be lost and Porcupine must accept the history.
func TestFailoverSingleNodeAOF(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	srv := redistest.MustStartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	customers := make([]string, faultCustomers)
	for i := range customers {
		customers[i] = fmt.Sprintf("A-%d", i)
	}
	l := newFaultLoad(t, faultEnv(t, srv.URL(), 0))
	stop := l.run(t, customers)
	for range 2 {
		l.waitAcked(t, 60)
		srv.Kill()
		srv.Restart(t)
	}
	l.waitAcked(t, 60)
	stop()
	r := l.verify(t, "single-aof-always", customers)
	if r.AckedGrants < 120 {
		t.Fatalf("only %d acknowledged grants: the load did not run", r.AckedGrants)
	}
	if r.DoubleGrants != 0 || r.LostGrants != 0 {
		t.Fatalf("double grants %d, lost grants %d; want 0 and 0", r.DoubleGrants, r.LostGrants)
	}
	if r.PorcupineResult != string(porcupine.Ok) {
		t.Fatalf("porcupine: %s (visualisation: %s)", r.PorcupineResult, r.PorcupineArtifact)
	}
	// The data really came back from the AOF, not from a lucky empty start.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	if n, err := rdb.Exists(context.Background(), "arb:{A-0}:meta").Result(); err != nil || n != 1 {
		t.Fatalf("A-0's meta after restarts: %d, %v", n, err)
	}
}
