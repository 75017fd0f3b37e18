package redisrecon_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/reconcile/feed"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// httpFeed serves a holdings feed over real HTTP from a sorted list of
// customers, as a product system does: every page carries the proof of the
// range it claims, computed from the whole list (not from the page's rows),
// so a paging bug shows as a page that does not match its proof. Lies make
// it misbehave the ways a real feed has.
type httpFeed struct {
	product   string
	customers []string
	offByOne  bool // next is the next page's first customer, not this page's last
	truncate  bool // the page before the last says it is the last
	noProof   bool // a feed that only reports: no proof
}

func (f *httpFeed) serve(tb testing.TB) *feed.Client {
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	return &feed.Client{URL: srv.URL + "/v1/holdings"}
}

func (f *httpFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after := r.URL.Query().Get("after")
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	n := len(f.customers)
	i := sort.Search(n, func(i int) bool { return f.customers[i] > after })
	end := min(i+limit, n)
	next := ""
	switch {
	case end == n:
	case f.truncate && end+limit >= n:
	case f.offByOne:
		next = f.customers[end]
	default:
		next = f.customers[end-1]
	}
	type holding struct {
		CustomerID string `json:"customer_id"`
		Product    string `json:"product"`
		IssuedAt   string `json:"issued_at"`
	}
	resp := map[string]any{"next": next}
	hs := []holding{}
	for _, c := range f.customers[i:end] {
		hs = append(hs, holding{c, f.product, "2019-03-01T00:00:00Z"})
	}
	resp["holdings"] = hs
	if !f.noProof {
		resp["proof"] = rangeProof(f.customers, after, next)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// rangeProof is docs/reconciliation.md's proof of the customers in (after, next], or
// (after, ∞) when next is empty, one holding each: written here from the
// the doc's words, apart from arbiter's code.
func rangeProof(customers []string, after, next string) map[string]any {
	h, n := sha256.New(), 0
	for _, c := range customers {
		if c > after && (next == "" || c <= next) {
			h.Write([]byte(c + "\n"))
			n++
		}
	}
	return map[string]any{"customers": n, "holdings": n, "digest": "sha256:" + hex.EncodeToString(h.Sum(nil))}
}

// TestReconcileLyingFeedReleasesNothing: with on_orphan: release, a feed
// that skips a customer per page (a cursor off by one) or drops its last
// page (5 of 40 customers: within min_share and the release cap) releases
// nothing, run after run: the source fails naming the lie, or, without a
// proof, its orphans are only reported.
func TestReconcileLyingFeedReleasesNothing(t *testing.T) {
	var all []string
	for i := range 40 {
		all = append(all, fmt.Sprintf("C-%02d", i))
	}
	for _, tc := range []struct {
		name   string
		feed   httpFeed
		status reconcile.SourceStatus
		error  string // the source's error names the lie
		action string // of the orphans it leaves
	}{
		{"a cursor off by one", httpFeed{offByOne: true}, reconcile.SourceFailed, `next "C-05" is not the page's last customer C-04`, ""},
		{"the last page dropped", httpFeed{truncate: true}, reconcile.SourceFailed, `proof of ("C-29", the end) states 10 customers, 10 holdings`, ""},
		{"the last page dropped, without a proof", httpFeed{truncate: true, noProof: true}, reconcile.SourceDone, "", reconcile.ActionUnproven},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.MustStartRedis(t).Client(t)
			card := tc.feed
			card.product, card.customers = "credit_card", all
			f := newRecon(t, rdb, card.serve(t), feedOf("personal_loan", "L-1"), validation.OnOrphanRelease)
			f.rec.Config.PageSize = 5
			for _, c := range all {
				f.grant(t, c, "credit_card", time.Now().Add(-2*time.Hour))
			}
			for _, later := range []time.Duration{0, 16 * time.Minute, 32 * time.Minute} { // the lie repeats every run
				f.later(later)
				run := f.reconcile(t)
				src := sourceStatus(run, "credit_card")
				if src.Status != tc.status || !strings.Contains(src.Error, tc.error) {
					t.Errorf("run at +%s: card source %+v, want %s with %q", later, src, tc.status, tc.error)
				}
				for key, x := range f.findings(t, run) {
					if x.Kind == reconcile.FindingOrphanGrant && x.Action != tc.action {
						t.Errorf("run at +%s: %s: %q, want %q (%s)", later, key, x.Action, tc.action, x.Detail)
					}
				}
			}
			for _, c := range all {
				if got := f.products(t, c); len(got) != 1 {
					t.Fatalf("%s holds %v at arbiter, want its card kept", c, got)
				}
			}
		})
	}
}
