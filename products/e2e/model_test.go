package e2e_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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

// The model test's knobs, from the environment: the seed of every worker's
// random schedule, and how long the workload runs.
const (
	modelSeedEnv     = "ARBITER_MODEL_SEED"
	modelDurationEnv = "ARBITER_MODEL_DURATION"
)

// The products the model's services issue, with short holds so that
// expiries happen during the run.
var (
	modelCard  = modelProduct{name: "credit_card", service: "card-service", key: cardKey, feedKey: cardFeedKey, holdTTL: "2s"}
	modelLoan  = modelProduct{name: "personal_loan", service: "loan-service", key: loanKey, feedKey: loanFeedKey, holdTTL: "3s"}
	modelStore = modelProduct{name: "store_card", service: "store-service", key: storeKey, feedKey: storeFeedKey, holdTTL: "2s"}
)

// modelPolicy is the policy of every model run but the rules' own: the
// card and the loan, an exclusive pair.
var modelPolicy = modelRules{
	products:  []modelProduct{modelCard, modelLoan},
	exclusive: [][]string{{"credit_card", "personal_loan"}},
}

// TestCrossSystemModel drives a seeded random workload through the whole
// system a bank runs — arbiter on a real redis-server (AOF, restarted during
// the run, and reached through a network link that stalls and is cut), and
// the card and loan services, each as three processes on one SQLite file: a
// healthy one, one whose local insert always fails (so it compensates) and
// one that crashes between arbiter's grant and its insert (restarted each
// time). Applications come by token, by OTP read out at the branch and
// online; customers close products; every call is sometimes retried with
// the same credentials, also after a close or compensation; checks are
// cancelled or left to expire. After quiescence (every pending row settled
// by the services' reconciliation) it asserts from all three systems that:
//
//	(a) no customer holds two products of one exclusive group across card.db and loan.db;
//	(b) every product at a service has a live grant at arbiter with the same check id;
//	(c) every grant at arbiter has its product, from the same check, at its service;
//
// and, from the durable record every variant keeps (a PostgreSQL archive
// that a nemesis stops and starts; here with outboxes small enough to
// refuse decisions outbox_full meanwhile), (f), (g) and (h) of
// assertArchive.
//
// Its siblings run the same workload and assertions under other faults:
// TestCrossSystemModelFailover (a replica whose link stalls, then a
// Sentinel failover, WAIT on) and TestCrossSystemModelLyingFeeds (holdings
// feeds that skip customers, drop their last page or redirect, under
// on_orphan: release); TestCrossSystemModelRules runs it under a family
// limit and a cooling-off period instead of the exclusive pair.
//
// Each worker's schedule comes from ARBITER_MODEL_SEED (printed on failure);
// the interleaving of workers is the machine's. ARBITER_MODEL_DURATION runs
// it longer than CI's budget.
func TestCrossSystemModel(t *testing.T) {
	m := runModel(t, faultModel{
		redis: func(t *testing.T, m *model) {
			m.redis = redistest.MustStartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
			m.redisLink = redistest.StartLink(t, m.redis.Addr)
			m.arbiterArgs = []string{"-redis-url", "redis://" + m.redisLink.Addr + "/0"}
		},
		// A second arbiter whose host is five minutes ahead serves the
		// services' faulty instances: holds, codes, tokens and expiries
		// must still be decided on one clock (Redis's).
		skew:    5 * time.Minute,
		nemeses: []nemesis{restartRedis, stallRedisLink, expireIdleMeta},
		// Outboxes small enough that a customer busy while PostgreSQL is
		// stopped fills its slot's: arbiter then refuses its decisions
		// 503 outbox_full, having written nothing, which the clients
		// retry and the services settle as any unknown outcome (the
		// ledger holds only checks arbiter answered). A decision made
		// under a full outbox would show as a grant or check without its
		// record (g), or a skipped number (f). 16, not less: a slot gathers
		// about 6 records between two exporter rounds at full speed, and
		// a bound reached while PostgreSQL is up makes the clients wait
		// out Retry-After, which shrank the run to a quarter of its
		// operations.
		outboxMax: 16,
	})
	if t.Failed() {
		return
	}
	if n := m.stats.with("", "outbox_full"); n == 0 {
		t.Errorf("no decision was refused outbox_full: the outboxes never filled while PostgreSQL was stopped")
	}
	if n := m.stats.with("nemesis:", "expired"); n == 0 {
		t.Errorf("no customer's meta expired: expireIdleMeta never found one idle")
	}
}

// faultModel is what a run of the model varies: the data store arbiter
// runs on, the policy's extra blocks, and the nemeses that break things
// while the workload runs.
type faultModel struct {
	// redis starts the store and sets m.arbiterArgs (and m.arbiterEnv).
	redis func(t *testing.T, m *model)
	// rules is the policy's products and rules, and what the invariant
	// holds the systems to; nil means modelPolicy.
	rules *modelRules
	// versionSwitch writes the rules as two policy versions, the second in
	// force about halfway through the workload (after the processes'
	// start, a few seconds, and half the budget): a nemesis of time, every
	// instance switching under checks and redemptions in flight.
	versionSwitch bool
	// policy, when set, returns what is appended to the policy's rules (a
	// reconcile: block); it runs before arbiter starts.
	policy func(t *testing.T, m *model) string
	// budget is the workload's length unless ARBITER_MODEL_DURATION is
	// set; default 40s.
	budget time.Duration
	// settled is how many long-standing customers (Z-00, Z-01, ...: last
	// in every feed's order) are issued a card or a loan before the
	// workload starts and keep it; the workload only ever applies for the
	// other product for them, which arbiter must refuse throughout.
	settled int
	// skew, when set, starts a second arbiter on the same store whose host
	// clock is that far ahead (ARBITER_FAULT_CLOCK_SKEW); the services'
	// faulty instances use it, the healthy ones and the branch the first.
	skew    time.Duration
	nemeses []nemesis
	// outboxMax is the outboxes' bound (ARBITER_OUTBOX_MAX); default
	// modelOutboxMax, which the run never reaches.
	outboxMax int
	// lossy says the faults may lose acknowledged writes (a failover):
	// the archive's assertions then take the weaker rule assertArchive
	// states.
	lossy bool
}

// A nemesis breaks something while the workload runs, from its own
// goroutine, until ctx ends; budget is the workload's whole length, so a
// nemesis can act at fixed fractions of it. Its tb's Fatal ends the nemesis
// only (nemesisTB); the workload runs on and the test fails.
type nemesis func(ctx context.Context, tb testing.TB, m *model, rng *rand.Rand, budget time.Duration)

// nemesisTB is the testing.TB of a nemesis goroutine: FailNow may only be
// called from the test's own goroutine, so here it marks the test failed
// and ends the calling goroutine.
type nemesisTB struct{ testing.TB }

func (n nemesisTB) FailNow()                  { n.TB.Fail(); runtime.Goexit() }
func (n nemesisTB) Fatal(args ...any)         { n.TB.Helper(); n.TB.Error(args...); runtime.Goexit() }
func (n nemesisTB) Fatalf(f string, a ...any) { n.TB.Helper(); n.TB.Errorf(f, a...); runtime.Goexit() }

// runModel runs the model under fm and returns it, for a variant's own
// assertions.
func runModel(t *testing.T, fm faultModel) *model {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(modelSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", modelSeedEnv, v, err)
		}
		seed = n
	}
	budget := cmp.Or(fm.budget, 40*time.Second)
	if v := os.Getenv(modelDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", modelDurationEnv, v, err)
		}
		budget = d
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce the schedule with %s=%d", modelSeedEnv, seed)
		}
	})
	t.Logf("seed %d, budget %v", seed, budget)
	if fm.versionSwitch {
		rules := cmp.Or(fm.rules, &modelPolicy)
		switched := *rules
		switched.switchAt = time.Now().Add(5*time.Second + budget/2)
		fm.rules = &switched
	}

	m := startModel(t, fm)
	m.settle(t, fm.settled)
	ctx, stop := context.WithTimeout(context.Background(), budget)
	defer stop()
	const workers = 6
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{m: m, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
			for ctx.Err() == nil {
				w.step(ctx)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.monitor(ctx, t)
	}()
	for i, n := range append(slices.Clone(fm.nemeses), stopPostgres) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n(ctx, nemesisTB{t}, m, rand.New(rand.NewPCG(seed, uint64(1000+i))), budget)
		}()
	}
	wg.Wait()
	m.stopSupervisors()
	m.heal(t)
	t.Logf("operations: %s", m.stats)

	m.quiesce(t)
	m.archiveAfterQuiescence(t)
	m.assertInvariant(t)
	return m
}

// atFraction waits until frac of the budget has passed since start; false
// if ctx ended first.
func atFraction(ctx context.Context, start time.Time, budget time.Duration, frac float64) bool {
	t := time.NewTimer(time.Until(start.Add(time.Duration(frac * float64(budget)))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// restartRedis SIGKILLs and restarts redis-server (AOF with fsync always
// keeps every write) at fixed points of the budget.
func restartRedis(ctx context.Context, tb testing.TB, m *model, _ *rand.Rand, budget time.Duration) {
	start := time.Now()
	for _, frac := range []float64{0.3, 0.65} {
		if !atFraction(ctx, start, budget, frac) {
			return
		}
		m.redis.Restart(tb)
		m.stats.add("nemesis: redis restart")
	}
}

// stallRedisLink stalls the network between arbiter and Redis for 0.2–2 s
// at random moments (scripts sent meanwhile run late or never; replies
// arrive after arbiter gave up), and sometimes cuts every connection at
// the end of a stall, losing what was in flight.
func stallRedisLink(ctx context.Context, _ testing.TB, m *model, rng *rand.Rand, _ time.Duration) {
	for {
		if !pause(ctx, time.Duration(2000+rng.IntN(3000))*time.Millisecond) {
			return
		}
		m.redisLink.Stall()
		m.stats.add("nemesis: redis link stalled")
		pause(ctx, time.Duration(200+rng.IntN(1800))*time.Millisecond)
		if rng.IntN(3) == 0 {
			m.redisLink.Cut()
			m.stats.add("nemesis: redis link cut")
		}
		m.redisLink.Heal()
	}
}

// pause waits d or until ctx ends; false if ctx ended.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// model is the system under test.
type model struct {
	redis       *redistest.Server    // single node; nil under Sentinel
	redisLink   *redistest.Link      // between arbiter and redis, when the fault model has one
	sentinels   *redistest.Sentinels // Sentinel fault model
	arbiterArgs []string             // how arbiter reaches Redis
	arbiterEnv  []string
	feeds       map[string]*lyingFeed // by product, when reconciliation reads them
	pg          *pgtest.Server        // the archive's PostgreSQL
	lossy       bool                  // faultModel.lossy
	ledger      ledger                // (g)'s record of the checks and grants the model saw
	lostChecks  int                   // checks of the ledger a lossy fault model lost
	archived    archived              // the archive once drained
	rules       modelRules
	auditLog    auditLog          // (d)'s record of arbiter's grants and ends
	settled     map[string]string // long-standing customer -> the product they hold
	dir         string
	sys         *system
	skewed      *proctest.Proc    // the arbiter the faulty instances use: sys.arbiter unless the model skews one
	fleets      map[string]*fleet // by product
	products    []string          // the fleets' products, in the workload's order
	stats       *counter
	stopped     atomic.Bool
	sup         sync.WaitGroup
}

// heal ends every fault a nemesis may have left on before quiescence: the
// system must then settle by itself.
func (m *model) heal(t *testing.T) {
	t.Helper()
	if m.redisLink != nil {
		m.redisLink.Heal()
	}
	if m.sentinels != nil {
		m.sentinels.WaitHealthy(t)
	}
	m.pg.Start(t)
}

// fleet is one product service run as several processes on one database.
type fleet struct {
	product, id, key, feedKey, db string
	mu                            sync.Mutex
	healthy, failing              *proctest.Proc
	crashing                      *proctest.Proc // crash-after-redeem; restarted after each crash
}

func startModel(t *testing.T, fm faultModel) *model {
	t.Helper()
	dir := t.TempDir()
	m := &model{dir: dir, stats: &counter{n: map[string]int{}}, fleets: map[string]*fleet{}, rules: modelPolicy}
	if fm.rules != nil {
		m.rules = *fm.rules
	}
	fm.redis(t, m)
	m.startArchive(t, fm)
	clients := filepath.Join(dir, "clients.yaml")
	policy := filepath.Join(dir, "policy.yaml")
	key := filepath.Join(dir, "signing.pem")
	extra := ""
	if fm.policy != nil {
		extra = fm.policy(t, m)
	}
	for path, body := range map[string]string{clients: clientsYAML + modelClientsExtra, policy: m.rules.policy() + extra} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSigningKey(t, key)
	startArbiter := func(env []string) *proctest.Proc {
		arb := proctest.Start(t, arbiterBin, append([]string{"-addr", "127.0.0.1:0",
			"-clients", clients, "-signing-key", key, "-policy", policy, "-log-level", "error"}, m.arbiterArgs...), env)
		proctest.WaitReady(t, arb.URL)
		return arb
	}
	arb := startArbiter(m.arbiterEnv)
	m.skewed = arb
	if fm.skew != 0 {
		// The skewed arbiter also writes compact grants where the other
		// writes whole ones: the window of ARBITER_COMPACT_GRANTS's
		// switch, each instance reading the other's grants.
		m.skewed = startArbiter(append(slices.Clone(m.arbiterEnv), "ARBITER_FAULT_CLOCK_SKEW="+fm.skew.String(),
			"ARBITER_COMPACT_GRANTS=on"))
	}
	m.sys = &system{dir: dir, arbiter: arb, branch: newClient(t, arb.URL, branchKey, "branch-portal"),
		ledger: newClient(t, arb.URL, cardKey, "card-service")}
	for _, p := range m.rules.products {
		f := &fleet{product: p.name, id: p.service, key: p.key, feedKey: p.feedKey, db: filepath.Join(dir, p.db())}
		f.healthy = m.startInstance(t, f, "")
		f.failing = m.startInstance(t, f, "fail-insert")
		f.crashing = m.startInstance(t, f, "crash-after-redeem")
		m.fleets[f.product] = f
		m.products = append(m.products, f.product)
		m.sup.Add(1)
		go m.supervise(t, f)
	}
	return m
}

// modelClientsExtra adds the reconciliation's admin and the store card's
// service to the clients file.
const modelClientsExtra = "  - {id: ops, key: " + opsKey + ", roles: [admin]}\n" +
	"  - {id: store-service, key: " + storeKey + ", roles: [checker, redeemer]}\n"

// instanceArgs is the command line of one process of fleet f with fault.
// Its reconciliation runs every 300ms on rows older than its request
// timeout.
func (m *model) instanceArgs(f *fleet, fault string) []string {
	arbiter := m.sys.arbiter.URL
	if fault != "" {
		arbiter = m.skewed.URL
	}
	return []string{"-addr", "127.0.0.1:0", "-product", f.product, "-id", f.id,
		"-db", f.db, "-arbiter-url", arbiter, "-log-level", "error",
		"-request-timeout", "3s", "-reconcile-interval", "300ms", "-reconcile-min-age", "4s"}
}

// instanceEnv is the environment of one process of fleet f with fault.
func (f *fleet) instanceEnv(fault string) []string {
	return []string{"PRODUCTSVC_ARBITER_KEY=" + f.key, "PRODUCTSVC_FAULT=" + fault, "PRODUCTSVC_FEED_KEY=" + f.feedKey}
}

// startInstance starts one process of fleet f with fault ("" for none).
func (m *model) startInstance(tb testing.TB, f *fleet, fault string) *proctest.Proc {
	tb.Helper()
	p := proctest.Start(tb, productsvcBin, m.instanceArgs(f, fault), f.instanceEnv(fault))
	proctest.WaitReady(tb, p.URL)
	return p
}

// supervise restarts f's crashing instance whenever it exits, until the
// workload ends.
func (m *model) supervise(tb testing.TB, f *fleet) {
	defer m.sup.Done()
	for !m.stopped.Load() {
		f.mu.Lock()
		p := f.crashing
		f.mu.Unlock()
		if _, exited := p.Wait(100 * time.Millisecond); !exited {
			continue
		}
		m.stats.add("crash " + f.id)
		np, err := proctest.StartNoCleanup(productsvcBin, m.instanceArgs(f, "crash-after-redeem"), f.instanceEnv("crash-after-redeem"))
		if err != nil {
			tb.Errorf("restart %s after its crash: %v", f.id, err)
			return
		}
		tb.Cleanup(np.Stop)
		f.mu.Lock()
		f.crashing = np
		f.mu.Unlock()
	}
}

func (m *model) stopSupervisors() {
	m.stopped.Store(true)
	m.sup.Wait()
}

// url picks an instance of f: mostly the healthy one.
func (f *fleet) url(rng *rand.Rand) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch n := rng.IntN(100); {
	case n < 12:
		return f.failing.URL
	case n < 18:
		return f.crashing.URL
	}
	return f.healthy.URL
}

// modelCustomers is the pool: small, so operations collide.
const modelCustomers = 16

// settle issues each of n long-standing customers a card or a loan
// (alternately) through the online channel, before the workload.
func (m *model) settle(t *testing.T, n int) {
	t.Helper()
	m.settled = map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		customer, product := fmt.Sprintf("Z-%02d", i), []string{"credit_card", "personal_loan"}[i%2]
		f := m.fleets[product]
		if a := call(ctx, http.MethodPost, f.healthy.URL+"/v1/applications/online", map[string]string{"customer_id": customer}); a.Status != http.StatusCreated {
			t.Fatalf("settle %s with %s: %s", customer, product, a)
		}
		m.settled[customer] = product
	}
}

// customers returns every customer the model may have touched.
func (m *model) customers() []string {
	out := make([]string, 0, modelCustomers+len(m.settled))
	for i := range modelCustomers {
		out = append(out, fmt.Sprintf("M-%02d", i))
	}
	for c := range m.settled {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// worker runs random operations; it remembers its recent applications so
// it can retry them with the same credentials.
type worker struct {
	m      *model
	rng    *rand.Rand
	recent []application
}

// application is one request body sent to a product service.
type application struct {
	product string
	path    string
	body    map[string]string
}

func (w *worker) step(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f := w.m.fleets[w.m.products[w.rng.IntN(len(w.m.products))]]
	customer := fmt.Sprintf("M-%02d", w.rng.IntN(modelCustomers))
	if len(w.m.settled) > 0 && w.rng.IntN(100) < 5 {
		// A long-standing customer applies online for the product that
		// excludes the one they hold.
		customer = fmt.Sprintf("Z-%02d", w.rng.IntN(len(w.m.settled)))
		other := w.m.fleets["credit_card"]
		if w.m.settled[customer] == "credit_card" {
			other = w.m.fleets["personal_loan"]
		}
		w.send(ctx, other, application{other.product, "/v1/applications/online", map[string]string{"customer_id": customer}})
		return
	}
	if len(w.m.rules.coolingOff) > 0 && w.rng.IntN(100) < 5 {
		w.closeBetween(ctx, w.m.rules.coolingOff[0], customer)
		return
	}
	switch n := w.rng.IntN(100); {
	case n < 20: // a branch check; the customer reads the OTP out to the service
		if ch := w.check(ctx, f, customer, "otp"); ch != nil {
			w.send(ctx, f, application{f.product, "/v1/applications", map[string]string{"customer_id": customer, "otp": ch.OTP}})
		}
	case n < 38: // a partner app holds an approval token and applies with it
		if ch := w.check(ctx, f, customer, "token"); ch != nil {
			w.send(ctx, f, application{f.product, "/v1/applications", map[string]string{"customer_id": customer, "token": ch.Token}})
		}
	case n < 50: // online: the service checks, underwrites and redeems itself
		w.send(ctx, f, application{f.product, "/v1/applications/online", map[string]string{"customer_id": customer}})
	case n < 58: // the customer closes the product
		a := call(ctx, http.MethodDelete, f.url(w.rng)+"/v1/products/"+customer, nil)
		w.m.stats.add(fmt.Sprintf("close %s %d", f.id, a.Status))
	case n < 85: // a client retries one of its recent applications
		if len(w.recent) > 0 {
			a := w.recent[w.rng.IntN(len(w.recent))]
			w.send(ctx, w.m.fleets[a.product], a)
		}
	case n < 92: // a check nobody redeems: it expires
		w.check(ctx, f, customer, "abandoned")
	default: // a check the branch cancels
		if ch := w.check(ctx, f, customer, "cancelled"); ch != nil {
			err := w.m.sys.branch.Cancel(ctx, ch.ID)
			w.m.stats.add("cancel " + outcome(err))
			if err != nil {
				w.m.ledger.check(ch.ID, customer, "cancel failed")
			}
		}
	}
}

// check asks arbiter for a check at the branch, counting the outcome.
func (w *worker) check(ctx context.Context, f *fleet, customer, why string) *client.Check {
	ch, err := w.m.sys.branch.Check(ctx, client.CheckRequest{CustomerID: customer, Product: f.product, AgentID: "agent-model"})
	w.m.stats.add("check(" + why + ") " + outcome(err))
	if err != nil {
		return nil
	}
	w.m.ledger.check(ch.ID, customer, why)
	return ch
}

// send posts an application to one of f's instances and remembers it.
func (w *worker) send(ctx context.Context, f *fleet, a application) {
	ans := call(ctx, http.MethodPost, f.url(w.rng)+a.path, a.body)
	w.m.stats.add(fmt.Sprintf("apply %s %d %s", a.path[len("/v1/applications"):], ans.Status, ans.str("reason")))
	if a.path == "/v1/applications" {
		w.recent = append(w.recent, a)
		if len(w.recent) > 8 {
			w.recent = w.recent[1:]
		}
	}
}

func outcome(err error) string {
	var e *client.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e):
		return string(e.Reason)
	}
	return "error"
}

// monitor checks (a) while the workload runs, not only at the end, and
// gathers arbiter's audit for (d) while the audit still holds it.
func (m *model) monitor(ctx context.Context, t *testing.T) {
	reported := map[string]bool{} // each violation once
	for pass := 0; ctx.Err() == nil; pass++ {
		held, err := m.snapshot()
		if err != nil {
			t.Errorf("monitor: %v", err)
			return
		}
		m.ledger.seenHeld(held)
		for c, h := range held {
			for _, v := range m.rules.violations(h) {
				if !reported[c+v] {
					reported[c+v] = true
					t.Errorf("(a) during the run %s %s", c, v)
				}
			}
		}
		m.stats.add("monitor pass")
		if len(m.rules.coolingOff) > 0 && pass%10 == 0 {
			// Arbiter may be unreachable under a nemesis: the next pass
			// reads again, and the final read must succeed.
			if err := m.auditLog.collect(ctx, m); err != nil {
				m.stats.add("monitor: audit unread")
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// snapshot returns what each customer held at the services at one moment
// (customer -> product -> check id). The files cannot be read at one
// instant, so it reads them in order, then all but the last again: a row of
// check X present in both reads of its file existed throughout (a retired
// check id never gets a row again), so those rows and the last file's
// were all held when the last file was read.
func (m *model) snapshot() (map[string]map[string]string, error) {
	n := len(m.products)
	reads := make([]map[string]row, 2*n-1)
	for i := range reads {
		r, err := queryDB(m.fleets[m.products[i%n]].db, "products")
		if err != nil {
			return nil, err
		}
		reads[i] = r
	}
	held := map[string]map[string]string{}
	for i, p := range m.products {
		for c, r := range reads[i] {
			if i < n-1 && reads[n+i][c].CheckID != r.CheckID {
				continue
			}
			if held[c] == nil {
				held[c] = map[string]string{}
			}
			held[c][p] = r.CheckID
		}
	}
	return held, nil
}

// quiesce waits until no service has pending work left: every redemption
// whose outcome was unknown, every failed insert and every close has been
// settled with arbiter by reconciliation.
func (m *model) quiesce(t *testing.T) {
	t.Helper()
	waitFor(t, 60*time.Second, "every pending row settled", func() bool {
		for _, f := range m.fleets {
			if len(readPending(t, f.db)) > 0 {
				return false
			}
		}
		return true
	})
}

// assertInvariant reads arbiter and every service and checks (a), (b) and
// (c), then (d) and (e) when the policy has cooling-off periods, and that
// each of the policy's rules refused something during the run.
func (m *model) assertInvariant(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows := map[string]map[string]row{} // product -> customer -> row
	for p, f := range m.fleets {
		rows[p] = readDB(t, f.db, "products")
	}
	total := 0
	for _, customer := range m.customers() {
		local := map[string]string{} // product -> check id
		for p := range rows {
			if r, ok := rows[p][customer]; ok {
				local[p] = r.CheckID
			}
		}
		for _, v := range m.rules.violations(local) {
			t.Errorf("(a) %s %s across the services' files", customer, v)
		}
		cu, err := m.sys.ledger.Customer(ctx, customer)
		if err != nil {
			t.Fatalf("arbiter: customer %s: %v", customer, err)
		}
		grants := map[string]string{} // product -> check id
		for _, g := range cu.Products {
			if prev, dup := grants[g.Product]; dup {
				t.Errorf("arbiter: %s holds two %s grants (%s, %s)", customer, g.Product, prev, g.CheckID)
			}
			grants[g.Product] = g.CheckID
			total++
		}
		for _, v := range m.rules.violations(grants) {
			t.Errorf("(a) %s %s at arbiter", customer, v)
		}
		for p, r := range rows {
			if lr, ok := r[customer]; ok && grants[p] != lr.CheckID {
				t.Errorf("(b) %s holds %s at its service from check %s, but arbiter's grant is %q; %s", customer, p, lr.CheckID, grants[p], m.history(customer, lr.CheckID))
			}
		}
		for p, id := range grants {
			if lr, ok := rows[p][customer]; !ok || lr.CheckID != id {
				t.Errorf("(c) arbiter granted %s %s (check %s), but its service holds %q; %s", customer, p, id, lr.CheckID, m.history(customer, id))
			}
		}
	}
	held := make([]string, 0, len(m.products))
	for _, p := range m.products {
		held = append(held, fmt.Sprintf("%d %s", len(rows[p]), p))
	}
	t.Logf("final state: %d grants at arbiter; at the services %s", total, strings.Join(held, ", "))
	m.assertCoolingOff(t)
	for _, r := range m.rules.refusals() {
		if m.stats.with(r.op, r.reason) == 0 {
			t.Errorf("no %s was refused %s: the workload never tried what the rule forbids, or arbiter does not apply it", r.op, r.reason)
		}
	}
}

// readPending returns the pending rows of a service's database file.
func readPending(tb testing.TB, path string) []string {
	tb.Helper()
	var out []string
	for c, r := range readDB(tb, path, "pending") {
		out = append(out, c+":"+r.CheckID)
	}
	return out
}

// counter counts operation outcomes, for the log.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(k string) { c.addN(k, 1) }

func (c *counter) addN(k string, n int) {
	c.mu.Lock()
	c.n[k] += n
	c.mu.Unlock()
}

// with sums the counts of the outcomes of op (the first word) refused
// with reason.
func (c *counter) with(op, reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.n {
		if f := strings.Fields(k); len(f) > 0 && strings.HasPrefix(f[0], op) && slices.Contains(f, reason) {
			n += v
		}
	}
	return n
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-50s %d", k, c.n[k])
	}
	return b.String()
}
