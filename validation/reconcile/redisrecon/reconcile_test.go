package redisrecon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/reconcile/redisrecon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// memFeed is a holdings feed in memory, paged as the interface says, with
// a proof on every page; it can fail on a given page or answer out of order.
type memFeed struct {
	holdings  []reconcile.Holding // sorted by customer id
	failPage  int                 // 1-based page that fails; 0: none
	unordered bool                // answer the first page in reverse
	hangPage  int                 // 1-based page that never answers (until its context ends)
	pages     int
}

func (f *memFeed) Page(ctx context.Context, after string, limit int) (reconcile.HoldingsPage, error) {
	f.pages++
	if f.failPage == f.pages {
		return reconcile.HoldingsPage{}, errors.New("feed: 502 bad gateway")
	}
	if f.hangPage == f.pages {
		<-ctx.Done()
		return reconcile.HoldingsPage{}, ctx.Err()
	}
	i := sort.Search(len(f.holdings), func(i int) bool { return f.holdings[i].CustomerID > after })
	end := min(i+limit, len(f.holdings))
	page := reconcile.HoldingsPage{Holdings: slices.Clone(f.holdings[i:end])}
	if end < len(f.holdings) {
		page.Next = f.holdings[end-1].CustomerID
	}
	// The proof of the range the page claims, from the whole list.
	var in []reconcile.Holding
	for _, h := range f.holdings {
		if h.CustomerID > after && (page.Next == "" || h.CustomerID <= page.Next) {
			in = append(in, h)
		}
	}
	proof := reconcile.ProofOf(in)
	page.Proof = &proof
	if f.unordered {
		slices.Reverse(page.Holdings)
	}
	return page, nil
}

func feedOf(product string, customers ...string) *memFeed {
	f := &memFeed{}
	for _, c := range customers {
		check := ""
		if id, ok := strings.CutPrefix(c, "check="); ok { // "check=<id>@<customer>"
			check, c, _ = strings.Cut(id, "@")
		}
		f.holdings = append(f.holdings, reconcile.Holding{CustomerID: c, Product: product, CheckID: check, IssuedAt: time.Now().Add(-48 * time.Hour)})
	}
	slices.SortFunc(f.holdings, func(a, b reconcile.Holding) int { return strings.Compare(a.CustomerID, b.CustomerID) })
	return f
}

// reconFixture is a store, a service to set the ledger up, and a reconciler
// over card and loan feeds.
type reconFixture struct {
	store *redisstore.Store
	recon *redisrecon.Store
	svc   *validation.Service
	rec   *reconcile.Reconciler
}

func newRecon(tb testing.TB, rdb redis.UniversalClient, card, loan reconcile.Feed, onOrphan string) *reconFixture {
	tb.Helper()
	store := redisstore.New(rdb, redisstore.Options{})
	policy := validation.DefaultPolicy()
	f := &reconFixture{store: store, recon: redisrecon.New(rdb, store), svc: &validation.Service{Store: store, Policy: policy}}
	f.rec = &reconcile.Reconciler{
		Ledger: store, Store: f.recon, Policy: policy,
		Config:  validation.ReconcileConfig{OnOrphan: onOrphan, PageSize: 2},
		Sources: []reconcile.Source{{Product: "credit_card", Name: "card-service", Feed: card}, {Product: "personal_loan", Name: "loan-service", Feed: loan}},
		Batch:   3,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	return f
}

var admin = validation.Actor{ID: "ops", Roles: []validation.Role{validation.RoleAdmin}}

// grant imports a grant into the ledger dated at.
func (f *reconFixture) grant(tb testing.TB, customer, product string, at time.Time) validation.Grant {
	tb.Helper()
	g, err := f.svc.Import(context.Background(), admin, customer, product, at)
	if err != nil {
		tb.Fatalf("import %s %s: %v", customer, product, err)
	}
	return g
}

// later makes the reconciler's clock run d ahead of the wall clock.
func (f *reconFixture) later(d time.Duration) {
	f.rec.Now = func() time.Time { return time.Now().Add(d) }
}

func (f *reconFixture) reconcile(tb testing.TB) reconcile.Run {
	tb.Helper()
	run, err := f.rec.Reconcile(context.Background(), "test")
	if err != nil {
		tb.Fatalf("reconcile: %v", err)
	}
	if run.Status != reconcile.RunDone {
		tb.Fatalf("run %s: %s", run.Status, run.Error)
	}
	return run
}

func (f *reconFixture) findings(tb testing.TB, run reconcile.Run) map[string]reconcile.Finding {
	tb.Helper()
	fs, err := f.recon.Findings(context.Background(), run.ID, 0, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]reconcile.Finding{}
	for _, x := range fs {
		out[x.CustomerID+"/"+string(x.Kind)] = x
	}
	return out
}

func (f *reconFixture) products(tb testing.TB, customer string) []string {
	tb.Helper()
	c, err := f.store.Customer(context.Background(), customer, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	var ps []string
	for _, g := range c.Grants {
		ps = append(ps, g.Product)
	}
	return ps
}

func sourceStatus(run reconcile.Run, product string) reconcile.SourceProgress {
	for _, s := range run.Sources {
		if s.Product == product {
			return s
		}
	}
	return reconcile.SourceProgress{}
}

// everyKind sets up one customer per finding kind (and two that must
// produce none), runs, and checks each finding and its effect.
func everyKind(t *testing.T, rdb redis.UniversalClient) {
	old, young := time.Now().Add(-2*time.Hour), time.Now().Add(-time.Minute)
	card := feedOf("credit_card", "C-1", "C-2", "check=chk_other@C-4", "C-7")
	loan := feedOf("personal_loan", "C-2", "C-6")
	f := newRecon(t, rdb, card, loan, validation.OnOrphanRelease)
	f.grant(t, "C-3", "credit_card", old)   // no feed lists it: orphan, reported first, released by a later run
	f.grant(t, "C-4", "credit_card", old)   // the feed names another check: mismatch
	f.grant(t, "C-5", "credit_card", young) // within the grace: left alone
	f.grant(t, "C-6", "personal_loan", old) // listed: nothing to say
	f.grant(t, "C-7", "personal_loan", old) // importing C-7's card breaks the policy: a case

	run := f.reconcile(t)
	want := map[reconcile.FindingKind]int{reconcile.FindingImported: 1, reconcile.FindingDoubleHolding: 2,
		reconcile.FindingOrphanGrant: 2, reconcile.FindingCheckMismatch: 1}
	for _, k := range reconcile.FindingKinds {
		if got := run.Counts[k]; got != want[k] {
			t.Errorf("counts[%s] = %d, want %d (all: %v)", k, got, want[k], run.Counts)
		}
	}
	fs := f.findings(t, run)
	for key, action := range map[string]string{
		"C-1/imported": reconcile.ActionImported, "C-2/double_holding": reconcile.ActionCaseOpened,
		"C-3/orphan_grant": reconcile.ActionReported, "C-4/check_mismatch": reconcile.ActionReported,
		"C-7/double_holding": reconcile.ActionCaseOpened, "C-7/orphan_grant": reconcile.ActionReported,
	} {
		if got := fs[key].Action; got != action {
			t.Errorf("finding %s: action %q, want %q (%+v)", key, got, action, fs[key])
		}
	}
	if d := fs["C-2/double_holding"].Detail; !strings.Contains(d, "Customer C-2 holds a Credit card at card-service since") ||
		!strings.Contains(d, "and a Personal loan at loan-service since") || !strings.HasSuffix(d, "contact the customer.") {
		t.Errorf("case detail = %q", d)
	}
	for c, want := range map[string][]string{"C-1": {"credit_card"}, "C-2": nil, "C-3": {"credit_card"}, "C-4": {"credit_card"},
		"C-5": {"credit_card"}, "C-6": {"personal_loan"}, "C-7": {"personal_loan"}} {
		if got := f.products(t, c); !slices.Equal(got, want) {
			t.Errorf("%s holds %v at arbiter, want %v", c, got, want)
		}
	}
	events, err := f.store.Audit(context.Background(), "C-1", 10, time.Now(), validation.EventImported)
	if err != nil || len(events) != 1 || events[len(events)-1].Actor != validation.ReconcilerActor {
		t.Errorf("C-1's imported events = %+v, %v; want one by %s", events, err, validation.ReconcilerActor)
	}
	cases, err := f.rec.Cases(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var cased []string
	for _, c := range cases {
		cased = append(cased, c.CustomerID)
	}
	if slices.Sort(cased); !slices.Equal(cased, []string{"C-2", "C-7"}) {
		t.Errorf("open cases = %v, want C-2 and C-7", cased)
	}
	for _, s := range run.Sources {
		if s.Status != reconcile.SourceDone || s.Error != "" {
			t.Errorf("source %+v, want done", s)
		}
	}
	if got := sourceStatus(run, "credit_card").Holdings; got != 4 {
		t.Errorf("card holdings read = %d, want 4", got)
	}

	t.Run("a second run finds only what is still wrong, and releases the confirmed orphan", func(t *testing.T) {
		f.later(16 * time.Minute) // more than the grace after the first sighting
		again := f.reconcile(t)
		want := map[reconcile.FindingKind]int{reconcile.FindingDoubleHolding: 2, reconcile.FindingOrphanGrant: 3, reconcile.FindingCheckMismatch: 1} // C-5 is past the grace now: first sighting
		for _, k := range reconcile.FindingKinds {
			if got := again.Counts[k]; got != want[k] {
				t.Errorf("counts[%s] = %d, want %d", k, got, want[k])
			}
		}
		if got := f.findings(t, again)["C-3/orphan_grant"].Action; got != reconcile.ActionReleased {
			t.Errorf("C-3's orphan on its second sighting: %q, want released", got)
		}
		if got := f.products(t, "C-3"); len(got) != 0 {
			t.Errorf("C-3 holds %v after the confirmed release", got)
		}
	})
	t.Run("an admin resolves a case, audited", func(t *testing.T) {
		ctx := context.Background()
		if _, err := f.rec.Resolve(ctx, admin, "C-2", "customer chose the loan; card closed"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.rec.Resolve(ctx, admin, "C-2", "again"); !errors.Is(err, validation.ErrNotFound) {
			t.Errorf("second resolve: %v, want not_found", err)
		}
		checker := validation.Actor{ID: "branch-portal", Roles: []validation.Role{validation.RoleChecker}}
		if _, err := f.rec.Resolve(ctx, checker, "C-7", "x"); !errors.Is(err, validation.ErrForbidden) {
			t.Errorf("resolve by a checker: %v, want forbidden", err)
		}
		evs, err := f.store.Audit(ctx, "C-2", 10, time.Now(), validation.EventCaseResolved, validation.EventCaseOpened)
		if err != nil || len(evs) != 2 || evs[0].Type != validation.EventCaseResolved || evs[0].Actor != "ops" || evs[0].Note != "customer chose the loan; card closed" {
			t.Errorf("C-2 case events = %+v, %v", evs, err)
		}
		cases, _ := f.rec.Cases(ctx, 100)
		if len(cases) != 1 || cases[0].CustomerID != "C-7" {
			t.Errorf("open cases after resolving C-2 = %+v", cases)
		}
	})
}

func TestReconcileEveryFindingKind(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	everyKind(t, srv.Client(t))
}

func TestReconcileCluster(t *testing.T) {
	cl := redistest.MustStartCluster(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { rdb.Close() })
	everyKind(t, rdb)
}

// TestReconcileNeverReleasesOnAPartialFeed: a feed that fails half-way,
// answers garbage, is empty or lists far fewer customers than last time
// releases nothing, and says why.
func TestReconcileNeverReleasesOnAPartialFeed(t *testing.T) {
	old := time.Now().Add(-2 * time.Hour)
	many := []string{"C-10", "C-11", "C-12", "C-13", "C-14", "C-15"}
	for _, tc := range []struct {
		name  string
		card  func() *memFeed
		prior []string // a successful earlier run's card feed
		error string
	}{
		{name: "fails on page 2", card: func() *memFeed { f := feedOf("credit_card", many...); f.failPage = 2; return f }, error: "502 bad gateway"},
		{name: "times out on page 2", card: func() *memFeed { f := feedOf("credit_card", many...); f.hangPage = 2; return f }, error: "deadline exceeded"},
		{name: "answers out of order", card: func() *memFeed { f := feedOf("credit_card", many...); f.unordered = true; return f }, error: "garbage"},
		{name: "is empty", card: func() *memFeed { return feedOf("credit_card") }, error: "listed no customers"},
		{name: "lists far fewer customers", card: func() *memFeed { return feedOf("credit_card", "C-10") }, prior: many, error: "under 50%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.MustStartRedis(t).Client(t)
			card := &memFeed{}
			f := newRecon(t, rdb, card, feedOf("personal_loan"), validation.OnOrphanRelease)
			f.rec.Config.Timeout = 200 * time.Millisecond // per page
			f.grant(t, "C-99", "credit_card", old)        // an orphan, if the feed were whole
			if tc.prior != nil {
				*card = *feedOf("credit_card", append(tc.prior, "C-99")...)
				f.reconcile(t)
			}
			*card = *tc.card()
			run := f.reconcile(t)
			src := sourceStatus(run, "credit_card")
			if src.Status != reconcile.SourceFailed || !strings.Contains(src.Error, tc.error) {
				t.Errorf("card source = %+v, want failed with %q", src, tc.error)
			}
			if run.Counts[reconcile.FindingOrphanGrant] != 0 {
				t.Errorf("orphans found on a partial feed: %v", run.Counts)
			}
			if got := f.products(t, "C-99"); !slices.Equal(got, []string{"credit_card"}) {
				t.Errorf("C-99 holds %v after a partial feed, want its card kept", got)
			}
		})
	}
}

// TestReconcileReleaseCap: more orphans than the cap (the larger of 10 and
// a tenth of the product's grants) releases none and reports them all;
// on_orphan: report releases nothing either.
func TestReconcileReleaseCap(t *testing.T) {
	old := time.Now().Add(-2 * time.Hour)
	for _, tc := range []struct {
		name     string
		orphans  int
		onOrphan string
		action   string
	}{
		{"at the cap: released", 10, validation.OnOrphanRelease, reconcile.ActionReleased},
		{"over the cap: reported", 11, validation.OnOrphanRelease, reconcile.ActionOverCap},
		{"report mode: reported", 3, validation.OnOrphanReport, reconcile.ActionReported},
		{"over a configured cap of 2: reported", 3, validation.OnOrphanRelease + ":2", reconcile.ActionOverCap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.MustStartRedis(t).Client(t)
			mode, cap, _ := strings.Cut(tc.onOrphan, ":")
			f := newRecon(t, rdb, feedOf("credit_card", "C-0"), feedOf("personal_loan"), mode)
			f.rec.Config.ReleaseCap, _ = strconv.Atoi(cap)
			f.grant(t, "C-0", "credit_card", old)
			for i := range tc.orphans {
				f.grant(t, fmt.Sprintf("O-%02d", i), "credit_card", old)
			}
			run := f.reconcile(t)
			if tc.action == reconcile.ActionReleased { // first sighting: reported; confirmed by a run past the grace
				f.later(16 * time.Minute)
				run = f.reconcile(t)
			}
			if got := run.Counts[reconcile.FindingOrphanGrant]; got != tc.orphans {
				t.Fatalf("orphans = %d, want %d", got, tc.orphans)
			}
			for key, x := range f.findings(t, run) {
				if x.Kind == reconcile.FindingOrphanGrant && x.Action != tc.action {
					t.Errorf("%s: action %q, want %q", key, x.Action, tc.action)
				}
			}
			released := tc.action == reconcile.ActionReleased
			if got := len(f.products(t, "O-00")) == 0; got != released {
				t.Errorf("O-00 released = %v, want %v", got, released)
			}
		})
	}
}

func TestReconcileLease(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	block := make(chan struct{})
	started := make(chan struct{})
	f := newRecon(t, rdb, &blockingFeed{started: started, release: block}, feedOf("personal_loan"), validation.OnOrphanReport)
	run, err := f.rec.Start(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if _, err := f.rec.Start(context.Background(), admin); !errors.Is(err, reconcile.ErrRunning) {
		t.Errorf("second start while running: %v, want reconciliation_running", err)
	}
	got, _, err := f.rec.Run(context.Background(), admin, run.ID, 0, 10)
	if err != nil || got.Status != reconcile.RunRunning {
		t.Errorf("run while running = %+v, %v", got, err)
	}
	if src := sourceStatus(got, "credit_card"); src.Status != reconcile.SourceReading || src.Holdings != 1 || src.Customers != 1 {
		t.Errorf("card progress while its second page is awaited = %+v, want reading, 1 holding read", src)
	}
	close(block)
	waitRun(t, f.rec, run.ID)
	// The run saves its final state, then gives the lease up: Wait returns
	// after both.
	if err := f.rec.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.rec.Reconcile(context.Background(), "test"); err != nil {
		t.Errorf("a run after the first finished: %v", err)
	}
}

// blockingFeed answers a first page of one customer, then waits for
// release before answering the last page (another customer); started is
// closed when the second page is asked for.
type blockingFeed struct {
	started, release chan struct{}
	once             sync.Once
}

func (b *blockingFeed) Page(ctx context.Context, after string, limit int) (reconcile.HoldingsPage, error) {
	if after == "" {
		return reconcile.HoldingsPage{Holdings: []reconcile.Holding{{CustomerID: "C-1", Product: "credit_card"}}, Next: "C-1"}, nil
	}
	b.once.Do(func() { close(b.started) })
	<-b.release
	return reconcile.HoldingsPage{Holdings: []reconcile.Holding{{CustomerID: "C-2", Product: "credit_card"}}}, nil
}

// waitRun polls the run's state (written by another goroutine to Redis)
// until it ends.
func waitRun(tb testing.TB, rec *reconcile.Reconciler, id string) reconcile.Run {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		run, _, err := rec.Run(context.Background(), admin, id, 0, 1)
		if err == nil && run.Status != reconcile.RunRunning {
			return run
		}
		if time.Now().After(deadline) {
			tb.Fatalf("run %s still %s after 10s (%v)", id, run.Status, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// staleGrants answers Grants as if read before the customers' grants were
// made: a redemption, or another run's import, landing between a batch's
// read and its imports.
type staleGrants struct{ *redisrecon.Store }

func (staleGrants) Grants(ctx context.Context, customers []string) (map[string][]validation.Grant, error) {
	return map[string][]validation.Grant{}, nil
}

// TestReconcileGrantAppearingMeanwhile: an import refused only because
// arbiter got the very product since the batch was read is no finding at
// all, certainly not a case.
func TestReconcileGrantAppearingMeanwhile(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	f := newRecon(t, rdb, feedOf("credit_card", "C-1"), feedOf("personal_loan"), validation.OnOrphanReport)
	f.grant(t, "C-1", "credit_card", time.Now().Add(-time.Hour))
	f.rec.Store = staleGrants{f.recon}
	run := f.reconcile(t)
	if len(run.Counts) != 0 {
		t.Errorf("counts = %v, want no finding", run.Counts)
	}
	if cases, _ := f.rec.Cases(context.Background(), 10); len(cases) != 0 {
		t.Errorf("cases = %+v", cases)
	}
}

// TestReconcileOrphanNeedsTwoSightings: a product service that settles its
// pending row late (it was down while another instance served the feed)
// inserts the product after the feed page was read; a release on that one
// sighting would leave the customer a product without a grant. An orphan
// is released only when a run at least grace after its first sighting
// finds it orphan again; a grant listed in between starts over.
func TestReconcileOrphanNeedsTwoSightings(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	card := feedOf("credit_card", "C-0")
	f := newRecon(t, rdb, card, feedOf("personal_loan"), validation.OnOrphanRelease)
	f.grant(t, "C-0", "credit_card", time.Now().Add(-2*time.Hour))
	f.grant(t, "C-1", "credit_card", time.Now().Add(-2*time.Hour)) // its row is settled late
	step := func(name string, at time.Duration, listed bool, action string) {
		t.Helper()
		f.later(at)
		if listed {
			*card = *feedOf("credit_card", "C-0", "C-1")
		} else {
			*card = *feedOf("credit_card", "C-0")
		}
		run := f.reconcile(t)
		got := f.findings(t, run)["C-1/orphan_grant"]
		if got.Action != action {
			t.Errorf("%s: C-1's orphan finding %+v, want action %q", name, got, action)
		}
		if action == reconcile.ActionReported && !strings.Contains(got.Detail, "will be released if still missing") {
			t.Errorf("%s: detail %q does not say what happens next", name, got.Detail)
		}
		held := len(f.products(t, "C-1")) == 1
		if want := action != reconcile.ActionReleased; held != want {
			t.Errorf("%s: C-1 holds its card = %v, want %v", name, held, want)
		}
	}
	step("first sighting", 0, false, reconcile.ActionReported)
	step("listed meanwhile (settled late)", 20*time.Minute, true, "")
	step("missing again: a new first sighting", 40*time.Minute, false, reconcile.ActionReported)
	step("again within the grace", 50*time.Minute, false, reconcile.ActionReported)
	step("again after the grace: released", 56*time.Minute, false, reconcile.ActionReleased)
}

// TestReconcileArbiterCheckWithoutGrantIsNotImported: a holding naming one
// of arbiter's check ids with no grant of it (released since the page was
// read, or not redeemed yet) is reported, never imported under a fresh id;
// a holding without a check id of a max 2 product is imported only while
// the customer has fewer grants than such holdings.
func TestReconcileArbiterCheckWithoutGrantIsNotImported(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	stale, err := validation.NewCheckID("C-1")
	if err != nil {
		t.Fatal(err)
	}
	card := feedOf("credit_card", "check="+stale+"@C-1")
	loan := feedOf("personal_loan", "C-2", "C-2", "C-3", "C-3")
	f := newRecon(t, rdb, card, loan, validation.OnOrphanReport)
	policy, err := policyfile.Parse([]byte(`products:
  credit_card:   { redeemers: [card-service] }
  personal_loan: { redeemers: [loan-service], max: 2 }
`))
	if err != nil {
		t.Fatal(err)
	}
	f.rec.Policy, f.svc.Policy = policy, policy
	f.grant(t, "C-2", "personal_loan", time.Now().Add(-time.Hour)) // one of C-2's two loans is known
	run := f.reconcile(t)
	fs := f.findings(t, run)
	if x := fs["C-1/check_mismatch"]; x.Action != reconcile.ActionReported || !strings.Contains(x.Detail, "lists customer C-1's Credit card from check "+stale+", arbiter holds no grant of it") {
		t.Errorf("C-1's finding = %+v, want check_mismatch reported", x)
	}
	if _, ok := fs["C-1/imported"]; ok || len(f.products(t, "C-1")) != 0 {
		t.Errorf("C-1's card from a released check was imported: %v", f.products(t, "C-1"))
	}
	if got := f.products(t, "C-2"); len(got) != 2 {
		t.Errorf("C-2 holds %v at arbiter, want 2 loans (1 known + 1 imported)", got)
	}
	if got := f.products(t, "C-3"); len(got) != 2 {
		t.Errorf("C-3 holds %v at arbiter, want 2 loans imported", got)
	}
	if got := run.Counts[reconcile.FindingImported]; got != 3 {
		t.Errorf("imported = %d, want 3", got)
	}
}

// lostLease answers every renewal as if another run held the lease.
type lostLease struct{ *redisrecon.Store }

func (lostLease) RenewLease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	return false, nil
}

// TestReconcileStopsWhenTheLeaseIsLost: a run whose lease renewal finds
// another holder stops at once, releases nothing and ends failed, saying
// so (two runs must not both release).
func TestReconcileStopsWhenTheLeaseIsLost(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	card := feedOf("credit_card", "C-0", "C-1", "C-2")
	f := newRecon(t, rdb, card, feedOf("personal_loan", "L-0"), validation.OnOrphanRelease)
	f.grant(t, "L-0", "personal_loan", time.Now().Add(-2*time.Hour))
	f.grant(t, "C-99", "personal_loan", time.Now().Add(-2*time.Hour)) // an orphan
	f.reconcile(t)                                                    // its first sighting
	f.later(time.Hour)
	card.hangPage = card.pages + 2 // the second page of the next run hangs until its context ends
	f.rec.Config.Timeout = 2 * time.Second
	f.rec.LeaseTTL = 60 * time.Millisecond
	f.rec.Store = lostLease{f.recon}
	run, err := f.rec.Reconcile(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != reconcile.RunFailed || !strings.Contains(run.Error, "lease was lost") {
		t.Errorf("run = %s %q, want failed: lease was lost", run.Status, run.Error)
	}
	if got := f.products(t, "C-99"); len(got) != 1 {
		t.Errorf("C-99 holds %v: released by a run without the lease", got)
	}
}

// TestReconcileInterruptedRunIsNotLeftRunning: a run whose context ends
// (shutdown) saves failed "interrupted by shutdown" before Wait returns;
// a run left "running" with no lease of its own (its process died) reads
// as failed.
func TestReconcileInterruptedRunIsNotLeftRunning(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	card := feedOf("credit_card", "C-0", "C-1", "C-2")
	card.hangPage = 2
	f := newRecon(t, rdb, card, feedOf("personal_loan"), validation.OnOrphanReport)
	base, shutdown := context.WithCancel(context.Background())
	f.rec.Base = base
	run, err := f.rec.Start(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	shutdown()
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.rec.Wait(wctx); err != nil {
		t.Fatalf("wait: %v", err)
	}
	got, err := f.recon.Run(context.Background(), run.ID)
	if err != nil || got.Status != reconcile.RunFailed || got.Error != "interrupted by shutdown" {
		t.Errorf("interrupted run = %s %q, %v; want failed, interrupted by shutdown", got.Status, got.Error, err)
	}

	dead := reconcile.Run{ID: "rec_00000000000000aa", Status: reconcile.RunRunning, StartedAt: time.Now(), Counts: map[reconcile.FindingKind]int{}}
	if err := f.recon.SaveRun(context.Background(), dead); err != nil {
		t.Fatal(err)
	}
	got, _, err = f.rec.Run(context.Background(), admin, dead.ID, 0, 10)
	if err != nil || got.Status != reconcile.RunFailed || got.Error != "the instance running it stopped" {
		t.Errorf("a running run without its lease = %s %q, %v; want failed, the instance running it stopped", got.Status, got.Error, err)
	}
}

// TestReconcileMinShareZeroTurnsTheCheckOff: min_share: 0 in the policy
// means no share check, not the default 0.5.
func TestReconcileMinShareZeroTurnsTheCheckOff(t *testing.T) {
	p, err := policyfile.Parse([]byte(`products:
  credit_card:   { redeemers: [card-service] }
  personal_loan: { redeemers: [loan-service] }
reconcile:
  min_share: 0
  page_size: 2
  sources:
    - { product: credit_card, url: http://card.internal/v1/holdings }
`))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.MustStartRedis(t).Client(t)
	card := feedOf("credit_card", "C-1", "C-2", "C-3", "C-4")
	f := newRecon(t, rdb, card, feedOf("personal_loan", "L-1"), validation.OnOrphanReport)
	f.rec.Config = *p.Reconcile
	f.reconcile(t)
	*card = *feedOf("credit_card", "C-1")
	if src := sourceStatus(f.reconcile(t), "credit_card"); src.Status != reconcile.SourceDone {
		t.Errorf("card source with min_share 0 = %+v, want done", src)
	}
}

// TestReconcileProductDroppedByTheVersionInForce: a feed of a product that
// an earlier policy version knew, and the one in force does not, is not
// imported (there is no rule to import it under: an import with none once
// wrote a grant of no product): it is reported for an admin.
func TestReconcileProductDroppedByTheVersionInForce(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	f := newRecon(t, rdb, feedOf("credit_card"), feedOf("personal_loan", "C-1"), validation.OnOrphanReport)
	old := validation.DefaultPolicy()
	old.Version, old.EffectiveFrom = "v1", time.Time{}
	cardOnly := &validation.Policy{Version: "v2", EffectiveFrom: time.Now().Add(-time.Hour),
		Products: map[string]validation.Product{"credit_card": {Redeemers: []string{"card-service"}}}}
	policy := &validation.Policy{Versions: []*validation.Policy{old, cardOnly}}
	if err := policy.Validate(nil); err != nil {
		t.Fatal(err)
	}
	f.rec.Policy = policy
	run := f.reconcile(t)
	if got := run.Counts[reconcile.FindingImported]; got != 1 {
		t.Fatalf("counts = %v; want the loan reported as a finding", run.Counts)
	}
	c, err := f.store.Customer(context.Background(), "C-1", time.Now())
	if err != nil || len(c.Grants) != 0 {
		t.Fatalf("C-1 = %+v, %v; want no grant imported", c, err)
	}
}
