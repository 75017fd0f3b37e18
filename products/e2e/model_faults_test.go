package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestCrossSystemModelFailover is the model under a replica whose link
// stalls and a Sentinel failover, with WAIT on
// (ARBITER_REDIS_WAIT_REPLICAS=1): a fifth of the way in, replication
// stalls (no error: the bytes stop) for longer than the services take to
// settle their pending work, so redemptions are answered not_durable and
// the services' reconciliation reads the customers while their grants are
// on the master only; then the master is killed, what the link held is
// lost, the Sentinels promote the replica, and the old master comes back
// empty as a replica of the new one. Grants no replica had are gone: a
// product issued on one would be a product without a grant (b), and the
// customer could take the excluded product too (a).
func TestCrossSystemModelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	runModel(t, faultModel{
		budget: 50 * time.Second,
		lossy:  true,
		redis: func(t *testing.T, m *model) {
			m.sentinels = redistest.MustStartSentinelsLinked(t)
			m.arbiterArgs = []string{"-redis-url", m.sentinels.URL()}
			m.arbiterEnv = []string{"ARBITER_REDIS_SENTINEL_MASTER=" + redistest.SentinelMasterName,
				"ARBITER_REDIS_WAIT_REPLICAS=1", "ARBITER_REDIS_WAIT_TIMEOUT=200ms",
				"ARBITER_COMPACT_GRANTS=on"} // the ledger's short grants through failovers
		},
		nemeses: []nemesis{stalledFailover},
	})
}

// stalledFailover stalls the replica's link, waits until the services'
// reconciliation has read what only the master has (rows older than the
// instances' 4s minimum age, read every 300ms), kills the master, cuts the
// link and lets the Sentinels fail over; the old master then rejoins.
func stalledFailover(ctx context.Context, tb testing.TB, m *model, _ *rand.Rand, budget time.Duration) {
	s := m.sentinels
	if !atFraction(ctx, time.Now(), budget, 0.2) {
		return
	}
	s.ReplicaLink.Stall()
	m.stats.add("nemesis: replica link stalled")
	if !pause(ctx, 6*time.Second) {
		s.ReplicaLink.Heal()
		return
	}
	victim := s.Master(tb)
	victim.Kill()
	s.ReplicaLink.Cut()
	m.stats.add("nemesis: master killed, replica link cut")
	s.WaitMaster(tb, victim)
	m.stats.add("nemesis: replica promoted")
	victim.Restart(tb) // back empty; the Sentinels demote it to a replica
}

// TestCrossSystemModelLyingFeeds is the model with arbiter's
// reconciliation releasing orphan grants (on_orphan: release, a short
// grace) from holdings feeds that lie as real ones have: a cursor off by
// one (next is the following page's first customer, so one customer per
// page is never read), a last page silently dropped, and a redirect to
// another server that serves the listing minus a customer. A lie that is
// believed releases the grant of a product the customer still holds, and
// the customer can then take the excluded product (a), or keeps a product
// without a grant (b). Reconciliations run back to back during the
// workload, each with freshly chosen lies.
func TestCrossSystemModelLyingFeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	feeds := map[string]*lyingFeed{}
	runModel(t, faultModel{
		budget:  45 * time.Second,
		settled: 10,
		redis: func(t *testing.T, m *model) {
			m.redis = redistest.MustStartRedis(t)
			m.arbiterArgs = []string{"-redis-url", m.redis.URL()}
		},
		policy: func(t *testing.T, m *model) string {
			write := func(name, body string) string {
				path := filepath.Join(m.dir, name)
				if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				return path
			}
			feeds["credit_card"] = startLyingFeed(t, cardFeedKey)
			feeds["personal_loan"] = startLyingFeed(t, loanFeedKey)
			m.feeds = feeds
			// Two sightings a grace apart outlast a pending row's life
			// (the services' 4s minimum age), so an honest page gives no
			// release that a live application could race.
			return fmt.Sprintf(`reconcile:
  grace: 5s
  on_orphan: release
  page_size: 3
  sources:
    - { product: credit_card,   url: %s/v1/holdings, key_file: %s, name: card-service }
    - { product: personal_loan, url: %s/v1/holdings, key_file: %s, name: loan-service }
`, feeds["credit_card"].URL(), write("card.key", cardFeedKey), feeds["personal_loan"].URL(), write("loan.key", loanFeedKey))
		},
		nemeses: []nemesis{reconcileWithLyingFeeds},
	})
	for p, f := range feeds {
		for _, l := range []lie{lieSkip, lieTruncate, lieRedirect} {
			if f.told[l].Load() == 0 {
				t.Errorf("the %s feed never told the %q lie: the nemesis did not run", p, l)
			}
		}
	}
}

// reconcileWithLyingFeeds runs reconciliations back to back while each
// feed tells one lie after another, each for a third of the budget: a feed
// bug repeats every run, which is what defeats the two-sightings rule.
func reconcileWithLyingFeeds(ctx context.Context, tb testing.TB, m *model, rng *rand.Rand, budget time.Duration) {
	schedule := map[string][]lie{
		"credit_card":   {lieSkip, lieTruncate, lieRedirect},
		"personal_loan": {lieTruncate, lieRedirect, lieSkip},
	}
	for p, f := range m.feeds {
		f.upstream.Store(m.fleets[p].healthy.URL)
	}
	start := time.Now()
	for ctx.Err() == nil {
		epoch := min(int(3*time.Since(start)/budget), 2)
		for p, f := range m.feeds {
			f.mode.Store(schedule[p][epoch])
		}
		run, err := m.reconcile(ctx)
		if err != nil {
			m.stats.add("reconcile: " + err.Error())
			pause(ctx, time.Second)
			continue
		}
		for _, src := range run.Sources {
			m.stats.add(fmt.Sprintf("reconcile %s under %q: %s", src.Product, m.feeds[src.Product].mode.Load(), src.Status))
		}
		for _, f := range run.Findings {
			m.stats.add(fmt.Sprintf("reconcile finding %s: %s %.200s", f.Kind, f.Action, f.Detail))
		}
		pause(ctx, time.Duration(300+rng.IntN(700))*time.Millisecond)
	}
}

// reconRun is what the model reads of a finished reconciliation.
type reconRun struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Findings []struct {
		Kind   string `json:"kind"`
		Action string `json:"action"`
		Detail string `json:"detail"`
	} `json:"findings"`
	Sources []struct {
		Product string `json:"product"`
		Status  string `json:"status"`
	} `json:"sources"`
}

// reconcile starts a run as the ops admin and waits for its end.
func (m *model) reconcile(ctx context.Context) (reconRun, error) {
	var run reconRun
	if err := m.opsCall(ctx, http.MethodPost, "/v1/reconciliations", http.StatusAccepted, &run); err != nil {
		return run, err
	}
	for run.Status == "running" || run.Status == "" {
		if !pause(ctx, 100*time.Millisecond) {
			return run, ctx.Err()
		}
		if err := m.opsCall(ctx, http.MethodGet, "/v1/reconciliations/"+run.ID+"?limit=100", http.StatusOK, &run); err != nil {
			return run, err
		}
	}
	return run, nil
}

func (m *model) opsCall(ctx context.Context, method, path string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, m.sys.arbiter.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+opsKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// lie is how a lyingFeed misleads arbiter.
type lie string

const (
	lieNone     lie = "honest"
	lieSkip     lie = "skip"     // next is the following page's first customer, whom arbiter then never reads
	lieTruncate lie = "truncate" // the last page is served empty, as if the listing ended before it
	lieRedirect lie = "redirect" // 307 to another server, which leaves one customer out
)

// lyingFeed stands between arbiter's reconciler and a product service's
// holdings feed (upstream) and tells its current lie (mode). Members of a
// page it does not rewrite (a completeness proof among them) pass as the
// product service wrote them, as a buggy proxy or feed would pass them.
type lyingFeed struct {
	key      string // the product service's feed key
	front    *httptest.Server
	shadow   *httptest.Server // the redirect's target
	upstream atomic.Value     // string: the product service's base URL
	mode     atomic.Value     // lie
	told     map[lie]*atomic.Int64
}

func startLyingFeed(tb testing.TB, key string) *lyingFeed {
	tb.Helper()
	f := &lyingFeed{key: key, told: map[lie]*atomic.Int64{}}
	for _, l := range []lie{lieNone, lieSkip, lieTruncate, lieRedirect} {
		f.told[l] = &atomic.Int64{}
	}
	f.mode.Store(lieNone)
	f.front = httptest.NewServer(http.HandlerFunc(f.serveFront))
	f.shadow = httptest.NewServer(http.HandlerFunc(f.serveShadow))
	tb.Cleanup(f.front.Close)
	tb.Cleanup(f.shadow.Close)
	return f
}

// URL is the feed's base URL, as the policy names it.
func (f *lyingFeed) URL() string { return f.front.URL }

// feedPage is one holdings page, every member kept.
type feedPage map[string]json.RawMessage

func (p feedPage) next() string {
	var s string
	_ = json.Unmarshal(p["next"], &s)
	return s
}

func (p feedPage) setNext(s string) { p["next"], _ = json.Marshal(s) }

func (p feedPage) holdings() []map[string]json.RawMessage {
	var hs []map[string]json.RawMessage
	_ = json.Unmarshal(p["holdings"], &hs)
	return hs
}

func customerOf(h map[string]json.RawMessage) string {
	var s string
	_ = json.Unmarshal(h["customer_id"], &s)
	return s
}

// fetch reads one page of the real feed.
func (f *lyingFeed) fetch(ctx context.Context, after, limit string) (feedPage, error) {
	base, _ := f.upstream.Load().(string)
	if base == "" {
		return nil, fmt.Errorf("no upstream yet")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		base+"/v1/holdings?after="+url.QueryEscape(after)+"&limit="+url.QueryEscape(limit), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+f.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upstream: %d %v", resp.StatusCode, err)
	}
	var p feedPage
	return p, json.Unmarshal(body, &p)
}

func (f *lyingFeed) serveFront(w http.ResponseWriter, r *http.Request) {
	mode, _ := f.mode.Load().(lie)
	if mode == lieRedirect {
		f.told[lieRedirect].Add(1)
		http.Redirect(w, r, f.shadow.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		return
	}
	after, limit := r.URL.Query().Get("after"), r.URL.Query().Get("limit")
	p, err := f.fetch(r.Context(), after, limit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if next := p.next(); next != "" {
		switch mode {
		case lieSkip:
			if following, err := f.fetch(r.Context(), next, "1"); err == nil {
				if hs := following.holdings(); len(hs) > 0 {
					p.setNext(customerOf(hs[0]))
					f.told[lieSkip].Add(1)
				}
			}
		}
	}
	if mode == lieTruncate && f.lastPage(r.Context(), p) {
		// The listing's last page is lost: this one says the listing
		// ended before it, its other members passed as they were.
		p["holdings"] = json.RawMessage("[]")
		p.setNext("")
		f.told[lieTruncate].Add(1)
	}
	writePage(w, p)
}

// lastPage reports whether p is the listing's last page with holdings.
func (f *lyingFeed) lastPage(ctx context.Context, p feedPage) bool {
	if len(p.holdings()) == 0 {
		return false
	}
	if p.next() == "" {
		return true
	}
	following, err := f.fetch(ctx, p.next(), "1")
	return err == nil && len(following.holdings()) == 0
}

// serveShadow serves the real listing without its last customer: a feed
// that looks complete, its cursor consistent with what it serves.
func (f *lyingFeed) serveShadow(w http.ResponseWriter, r *http.Request) {
	after, limit := r.URL.Query().Get("after"), r.URL.Query().Get("limit")
	p, err := f.fetch(r.Context(), after, limit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if hs := p.holdings(); p.next() == "" && len(hs) > 0 {
		p["holdings"], _ = json.Marshal(hs[:len(hs)-1])
	}
	writePage(w, p)
}

func writePage(w http.ResponseWriter, p feedPage) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p)
}
