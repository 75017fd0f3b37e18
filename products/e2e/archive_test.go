package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/pgarchive"
	"github.com/arbiter-bank/arbiter/validation/pgarchive/pgtest"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// archiveOpsEnv overrides the number of calls of
// TestArchiveKeepsEveryDecision's workload (default 100000).
const archiveOpsEnv = "ARBITER_ARCHIVE_OPS"

// archiveSeed is the workload's seed: a failure replays the same choices
// (the interleaving of the workers and the faults still varies).
const archiveSeed = 20261207

// TestArchiveKeepsEveryDecision runs two arbiter instances with the archive
// on, sharing one redis-server (AOF, fsync always) and one PostgreSQL,
// under a concurrent workload of checks, refusals, redemptions, cancels and
// releases, while one instance is SIGKILLed as it exports, PostgreSQL stops
// for a while, and Redis is killed and started again from its AOF. Once the
// outboxes are drained, every customer's archived records must be its
// audit, one record per sequence number with no gap.
func TestArchiveKeepsEveryDecision(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	// 10^5 calls: the workload took 1.5 to 3.5 minutes (plus 15 to 60 s
	// to drain and compare) on a 2-core machine under -race, depending on
	// what else ran. ARBITER_ARCHIVE_OPS lowers it for a quick run.
	ops := 100000
	if v := os.Getenv(archiveOpsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", archiveOpsEnv, v)
		}
		ops = n
	}
	rds := redistest.MustStartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	pg := pgtest.Start(t)
	sys := startArchiveSystem(t, rds.URL(), pg.DSN())
	w := newArchiveWorkload(t, sys, ops)

	w.start()
	// (a) An instance dies while it exports; another takes its place.
	w.waitProgress(t, 0.2)
	victim := archiveSeed % 2
	killExporting(t, sys, pg.DSN(), victim)
	t.Logf("SIGKILLed arbiter %s while it exported, at %d ops", sys.instance(victim).proc.URL, w.done.Load())
	sys.replace(t, victim)
	// (b) The archive goes away while decisions continue.
	w.waitProgress(t, 0.4)
	pg.Stop(t)
	t.Logf("PostgreSQL stopped at %d ops", w.done.Load())
	w.waitProgress(t, 0.5)
	pg.Start(t)
	t.Logf("PostgreSQL started at %d ops", w.done.Load())
	// (c) Redis crashes and comes back from its AOF.
	w.waitProgress(t, 0.65)
	rds.Restart(t)
	t.Logf("redis-server killed and restarted from its AOF at %d ops", w.done.Load())
	w.faultsDone.Store(true)
	w.wait()

	checkArchive(t, sys, pg.DSN(), w.customers)
}

// TestArchiveOnCluster is TestArchiveKeepsEveryDecision's check on a
// 3-master Redis Cluster (16384 outboxes spread over the masters), with a
// smaller workload and one instance SIGKILLed as it exports.
func TestArchiveOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	cl := redistest.MustStartCluster(t)
	pg := pgtest.Start(t)
	sys := startArchiveSystem(t, cl.URL(), pg.DSN())
	w := newArchiveWorkload(t, sys, 10000)

	w.start()
	w.waitProgress(t, 0.3)
	victim := archiveSeed % 2
	killExporting(t, sys, pg.DSN(), victim)
	t.Logf("SIGKILLed arbiter %s while it exported, at %d ops", sys.instance(victim).proc.URL, w.done.Load())
	sys.replace(t, victim)
	w.faultsDone.Store(true)
	w.wait()

	checkArchive(t, sys, pg.DSN(), w.customers)
}

// archiveSystem is two arbiter instances with the archive on, sharing a
// Redis and a PostgreSQL.
type archiveSystem struct {
	args []string // arbiter's arguments, -addr aside

	mu   sync.Mutex
	inst [2]*arbiterInstance
}

// arbiterInstance is one running arbiter and its clients: branch-portal
// (a checker), card-service and loan-service (checkers, and the
// redeemers of credit_card and personal_loan).
type arbiterInstance struct {
	proc               *proctest.Proc
	branch, card, loan *client.Client
}

func startArchiveSystem(t *testing.T, redisURL, dsn string) *archiveSystem {
	t.Helper()
	dir := t.TempDir()
	clients := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(clients, []byte(clientsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	s := &archiveSystem{args: []string{"-redis-url", redisURL, "-clients", clients, "-signing-key", key,
		"-archive-url", dsn, "-export-interval", "200ms", "-log-level", "error"}}
	for i := range s.inst {
		s.replace(t, i)
	}
	return s
}

// replace starts a new instance in place i (on a new port).
func (s *archiveSystem) replace(tb testing.TB, i int) {
	tb.Helper()
	p := proctest.Start(tb, arbiterBin, append([]string{"-addr", "127.0.0.1:0"}, s.args...), nil)
	proctest.WaitReady(tb, p.URL)
	in := &arbiterInstance{proc: p, branch: archiveClient(tb, p.URL, branchKey, "branch-portal"),
		card: archiveClient(tb, p.URL, cardKey, "card-service"), loan: archiveClient(tb, p.URL, loanKey, "loan-service")}
	s.mu.Lock()
	s.inst[i] = in
	s.mu.Unlock()
}

func (s *archiveSystem) instance(i int) *arbiterInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inst[i]
}

// archiveClient is a client that gives up quickly, so that a worker moves
// to the other instance rather than waiting on a dead one.
func archiveClient(tb testing.TB, base, key, id string) *client.Client {
	tb.Helper()
	c, err := client.New(client.Config{BaseURL: base, APIKey: key, ClientID: id, MaxAttempts: 2,
		HTTPClient: &http.Client{Timeout: 3 * time.Second}})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// killExporting SIGKILLs instance i while the exporters write: the
// archive's count grew between two reads. Under the workload an
// exporter round takes seconds (a slot at a time), and each instance's
// rounds follow each other 200ms apart, so the kill lands inside one.
func killExporting(tb testing.TB, s *archiveSystem, dsn string, i int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	arch, err := pgarchive.Open(ctx, dsn, pgarchive.Options{})
	if err != nil {
		tb.Fatalf("open the archive: %v", err)
	}
	defer arch.Close()
	last := int64(-1)
	waitFor(tb, time.Minute, "the archive growing", func() bool {
		n, err := arch.Count(ctx)
		grew := err == nil && last >= 0 && n > last
		last = n
		return grew
	})
	if err := s.instance(i).proc.Signal(syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
}

// metric reads one unlabelled sample from url's /metrics.
func metric(url, name string) (float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}

// archiveWorkload is the seeded workload: workers, each owning a share of
// the customers, take turns over their customers, one call per turn,
// until ops calls were made and the test has injected its faults (so
// every fault meets a running workload).
type archiveWorkload struct {
	sys       *archiveSystem
	ops       int64
	customers []string
	workers   int

	done       atomic.Int64 // calls started
	faultsDone atomic.Bool  // the test injected every fault
	ok         atomic.Int64 // calls that changed something
	refused    atomic.Int64 // calls arbiter refused (a refusal is recorded too)
	failed     atomic.Int64 // calls whose outcome is unknown (network, 503, timeout)
	byKind     sync.Map     // kind -> *atomic.Int64
	wg         sync.WaitGroup
	start0     time.Time
	tb         testing.TB
}

func newArchiveWorkload(tb testing.TB, sys *archiveSystem, ops int) *archiveWorkload {
	tb.Helper()
	// About 50 calls per customer keeps each audit (at most two events a
	// call) within one page of GET /audit (200) and the audit's caps.
	n := max(1000, ops/50)
	w := &archiveWorkload{sys: sys, ops: int64(ops), workers: 32, tb: tb}
	for i := range n {
		w.customers = append(w.customers, fmt.Sprintf("ARC-%05d", i))
	}
	tb.Logf("workload: %d calls over %d customers, %d workers, seed %d", ops, n, w.workers, archiveSeed)
	return w
}

func (w *archiveWorkload) start() {
	w.start0 = time.Now()
	for i := range w.workers {
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.work(i) }()
	}
}

// wait waits for the workers and logs what the calls did.
func (w *archiveWorkload) wait() {
	w.wg.Wait()
	var kinds []string
	w.byKind.Range(func(k, v any) bool {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	w.tb.Logf("workload done in %v: %d calls, %d ok, %d refused, %d unknown outcome; %s",
		time.Since(w.start0).Round(time.Millisecond), w.ok.Load()+w.refused.Load()+w.failed.Load(), w.ok.Load(), w.refused.Load(), w.failed.Load(),
		strings.Join(kinds, " "))
}

// waitProgress waits until the given fraction of the calls was made.
func (w *archiveWorkload) waitProgress(tb testing.TB, frac float64) {
	tb.Helper()
	waitFor(tb, 5*time.Minute, fmt.Sprintf("%.0f%% of the workload", frac*100), func() bool {
		return w.done.Load() >= int64(frac*float64(w.ops))
	})
}

// custState is what a worker believes of one of its customers.
type custState struct {
	id     string
	held   *client.Check     // the live hold it placed, if any
	grants map[string]string // product -> check id of the grant
}

var archiveProducts = [2]string{"credit_card", "personal_loan"}

func (w *archiveWorkload) work(i int) {
	rng := rand.New(rand.NewPCG(archiveSeed, uint64(i)))
	var mine []*custState
	for j := i; j < len(w.customers); j += w.workers {
		mine = append(mine, &custState{id: w.customers[j], grants: map[string]string{}})
	}
	for turn := 0; ; turn++ {
		if w.done.Add(1) > w.ops && w.faultsDone.Load() {
			return
		}
		w.step(rng, mine[turn%len(mine)])
	}
}

// step makes one call for customer c, chosen from what c is believed to
// have: a hold is redeemed (token), cancelled, or left for a competing
// check to be refused; a grant is sometimes released; otherwise a check
// of either product by any checker.
func (w *archiveWorkload) step(rng *rand.Rand, c *custState) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := rng.Float64()
	switch {
	case c.held != nil && r < 0.5:
		h := c.held
		c.held = nil
		_, err := w.call(rng, "redeem", func(in *arbiterInstance) error {
			_, err := redeemer(in, h.Product).Redeem(ctx, client.Redemption{Token: h.Token})
			return err
		})
		if err == nil {
			c.grants[h.Product] = h.ID
		}
	case c.held != nil && r < 0.85:
		h := c.held
		c.held = nil
		w.call(rng, "cancel", func(in *arbiterInstance) error {
			return redeemer(in, h.Product).Cancel(ctx, h.ID)
		})
	case c.held == nil && len(c.grants) > 0 && r < 0.3:
		for p, id := range c.grants {
			delete(c.grants, p)
			w.call(rng, "release", func(in *arbiterInstance) error {
				return redeemer(in, p).Release(ctx, c.id, p, id)
			})
			break
		}
	default:
		p := archiveProducts[rng.IntN(2)]
		checker := rng.IntN(3)
		key := fmt.Sprintf("arc-%s-%d", c.id, rng.Uint64())
		var got *client.Check
		w.call(rng, "check", func(in *arbiterInstance) error {
			ch, err := [3]*client.Client{in.branch, in.card, in.loan}[checker].Check(ctx,
				client.CheckRequest{CustomerID: c.id, Product: p, IdempotencyKey: key})
			got = ch
			return err
		})
		if got != nil && c.held == nil {
			c.held = got
		}
	}
}

func redeemer(in *arbiterInstance, product string) *client.Client {
	if product == "credit_card" {
		return in.card
	}
	return in.loan
}

// call makes one call on a random instance and, when its outcome is
// unknown, once more on the other one. It counts the outcome.
func (w *archiveWorkload) call(rng *rand.Rand, kind string, f func(*arbiterInstance) error) (bool, error) {
	v, _ := w.byKind.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	first := rng.IntN(2)
	var err error
	for try := range 2 {
		err = f(w.sys.instance((first + try) % 2))
		if err == nil || !unknownOutcome(err) {
			break
		}
	}
	switch {
	case err == nil:
		w.ok.Add(1)
	case unknownOutcome(err):
		w.failed.Add(1)
	default:
		w.refused.Add(1)
	}
	return err == nil, err
}

// unknownOutcome reports whether a call may or may not have happened.
func unknownOutcome(err error) bool {
	var ce *client.Error
	return client.IsTemporary(err) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ce) && ce.Status >= 500)
}

// checkArchive waits until every customer's archived records are its
// audit, then checks them once more and reports what differs.
func checkArchive(t *testing.T, sys *archiveSystem, dsn string, customers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	arch, err := pgarchive.Open(ctx, dsn, pgarchive.Options{})
	if err != nil {
		t.Fatalf("open the archive: %v", err)
	}
	defer arch.Close()
	in := sys.instance(0)
	began := time.Now()
	deadline := began.Add(2 * time.Minute)
	var problems []string
	var types map[string]int
	for {
		problems, types = compareArchive(ctx, arch, in.branch, customers)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // the exporters' interval: the next round's result
	}
	for _, p := range problems[:min(len(problems), 30)] {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Fatalf("%d customers' archives differ from their audits (%d shown)", len(problems), min(len(problems), 30))
	}
	t.Logf("archive holds the events of %d customers' audits, each once, no gap (drained in %v): %v",
		len(customers), time.Since(began).Round(time.Millisecond), types)
	// The workload must have made every kind of record, or the comparison
	// proves less than it says.
	for _, typ := range []string{"checked", "refused", "redeemed", "cancelled", "released"} {
		if types[typ] == 0 {
			t.Errorf("no %s event in any audit: the workload does not exercise it", typ)
		}
	}
	conflicts, err := arch.Conflicts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) > 0 {
		t.Errorf("archive kept %d conflicts, want none: %+v", len(conflicts), conflicts[:min(len(conflicts), 5)])
	}
	for i := range sys.inst {
		u := sys.instance(i).proc.URL
		if n, err := metric(u, "arbiter_outbox_records"); err != nil || n != 0 {
			t.Errorf("%s arbiter_outbox_records = %v (%v), want 0 once archived", u, n, err)
		}
	}
}

// compareArchive compares every customer's archived records with its
// audit, eight customers at a time, and returns what differs (one line
// per customer) and how many events the audits hold.
func compareArchive(ctx context.Context, arch *pgarchive.Archive, c *client.Client, customers []string) ([]string, map[string]int) {
	var (
		mu       sync.Mutex
		problems []string
		types    = map[string]int{}
		wg       sync.WaitGroup
		next     atomic.Int64
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(customers)); i = next.Add(1) - 1 {
				audit, p := compareCustomer(ctx, arch, c, customers[i])
				mu.Lock()
				for _, e := range audit {
					types[e.Type]++
				}
				if p != "" {
					problems = append(problems, p)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return problems, types
}

// compareCustomer compares one customer's archived records with its
// audit: the audit, and "" when they agree.
func compareCustomer(ctx context.Context, arch *pgarchive.Archive, c *client.Client, cu string) ([]client.Event, string) {
	audit, err := c.Audit(ctx, cu, 200)
	if err != nil {
		return nil, fmt.Sprintf("audit of %s: %v", cu, err)
	}
	if len(audit) == 200 {
		return nil, fmt.Sprintf("audit of %s fills its page (200): the workload must stay below it", cu)
	}
	recs, err := arch.Events(ctx, cu)
	if err != nil {
		return audit, fmt.Sprintf("archive of %s: %v", cu, err)
	}
	return audit, diffRecords(cu, recs, audit)
}

// diffRecords says how a customer's archived records differ from its
// audit (newest first, as the API answers): "" when they are the same
// events and the sequence numbers run without a gap or a repeat.
func diffRecords(customer string, recs []validation.Record, audit []client.Event) string {
	var bad []string
	for i, r := range recs {
		if r.ID != validation.RecordID(customer, r.Seq) {
			bad = append(bad, fmt.Sprintf("record %q has seq %d", r.ID, r.Seq))
		}
		if i > 0 && r.Seq != recs[i-1].Seq+1 {
			bad = append(bad, fmt.Sprintf("seq %d follows %d (a lost or repeated record)", r.Seq, recs[i-1].Seq))
		}
	}
	want := map[string]int{}
	for _, e := range audit {
		want[eventKey(e.At, e.Type, e.Product, e.CheckID, e.Actor, string(e.Reason), e.Fence, e.PolicyVersion)]++
	}
	got := map[string]int{}
	for _, r := range recs {
		got[eventKey(r.At, string(r.Type), r.Product, r.CheckID, r.Actor, string(r.Reason), r.Fence, r.PolicyVersion)]++
	}
	for k, n := range want {
		if got[k] != n {
			bad = append(bad, fmt.Sprintf("audit has %s %d×, archive %d×", k, n, got[k]))
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("archive has %s %d×, audit none", k, n))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %d archived, %d in the audit: %s", customer, len(recs), len(audit),
		strings.Join(bad[:min(len(bad), 5)], "; "))
}

func eventKey(at time.Time, typ, product, checkID, actor, reason string, fence int64, policy string) string {
	return fmt.Sprintf("{%d %s %s %s %s %s fence=%d policy=%s}", at.UnixMilli(), typ, product, checkID, actor, reason, fence, policy)
}
