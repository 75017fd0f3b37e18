package e2e_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The store card's service, which only the rules' model runs.
const (
	storeKey     = "e2e-store-service-key"
	storeFeedKey = "e2e-store-feed-key"
)

// modelRulesPolicy is a bank's rule set over three products: at most two
// unsecured credit products of three, and no personal loan within a few
// seconds of a card's end. Nothing is exclusive, so a customer may hold
// two products at once, and only the family limit stops the third.
var modelRulesPolicy = modelRules{
	products: []modelProduct{modelCard, modelLoan, modelStore},
	families: []familyLimit{{name: "unsecured_credit", title: "unsecured credit products", max: 2,
		products: []string{"credit_card", "personal_loan", "store_card"}}},
	coolingOff: []coolingOff{{name: "loan_after_card", after: []string{"credit_card"},
		products: []string{"personal_loan"}, period: 3 * time.Second}},
}

// TestCrossSystemModelRules is the model under a policy with a family limit
// and a cooling-off period (modelRulesPolicy), with the faults of
// TestCrossSystemModel (Redis restarted, its link stalled and cut, a
// skewed second arbiter) and a third product service. Besides (b) and (c)
// it asserts, from the services' files and arbiter's ledger and audit:
//
//	(a) no customer ever holds more products of the family than its max,
//	    at the services (during the run and at the end) or at arbiter;
//	(d) arbiter never granted a product of a cooling-off rule while its
//	    period ran after a product of the rule's after ended there, and
//	    no service issued one from such a grant;
//	(e) the services' and arbiter's times agree: a product is issued no
//	    earlier than arbiter granted it, and its grant ends at arbiter no
//	    earlier than the service closed it (so (d), on arbiter's clock,
//	    speaks of the services' products too);
//
// and that both rules refused something during the run, so the assertions
// are not vacuous. The policy is two versions of the same rules, the
// second in force mid-run (versionSwitch): the switch must neither open a
// gap in the rules nor lose the version of any grant, and grants must have
// been decided under each.
func TestCrossSystemModelRules(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	runModel(t, faultModel{
		rules:         &modelRulesPolicy,
		versionSwitch: true,
		budget:        30 * time.Second,
		redis: func(t *testing.T, m *model) {
			m.redis = redistest.MustStartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
			m.redisLink = redistest.StartLink(t, m.redis.Addr)
			m.arbiterArgs = []string{"-redis-url", "redis://" + m.redisLink.Addr + "/0"}
		},
		skew:    5 * time.Minute,
		nemeses: []nemesis{restartRedis, stallRedisLink, expireIdleMeta},
	})
}

// modelProduct is a product of the model's policy and the service that
// issues it.
type modelProduct struct {
	name, service, key, feedKey string
	holdTTL                     string
}

// db is the name of the service's database file.
func (p modelProduct) db() string { return strings.TrimSuffix(p.service, "-service") + ".db" }

// modelRules is a model run's policy, as the invariant reads it: the
// products (in the workload's order) and the rules over them.
type modelRules struct {
	products   []modelProduct
	exclusive  [][]string
	families   []familyLimit
	coolingOff []coolingOff
	// switchAt, when set, makes the file two versions of these rules,
	// modelVersions, the second in force from switchAt: every instance
	// switches mid-run, with holds placed under the first redeemed under
	// the second.
	switchAt time.Time
}

// modelVersions are the versions a file with switchAt names.
var modelVersions = [2]string{"model-1", "model-2"}

// familyLimit: at most max of products held at once.
type familyLimit struct {
	name, title string
	max         int
	products    []string
}

// coolingOff: none of products granted within period after a product of
// after ended.
type coolingOff struct {
	name            string
	after, products []string
	period          time.Duration
}

// policy writes the rules as arbiter's policy file: one version, or two
// of the same rules switching at switchAt.
func (r modelRules) policy() string {
	if r.switchAt.IsZero() {
		return r.version()
	}
	indent := func(s string) string {
		return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
	}
	return fmt.Sprintf("versions:\n  - version: %s\n%s  - version: %s\n    effective_from: %s\n%s",
		modelVersions[0], indent(r.version()), modelVersions[1], r.switchAt.UTC().Format(time.RFC3339), indent(r.version()))
}

// version writes the products and rules of one version.
func (r modelRules) version() string {
	var b strings.Builder
	b.WriteString("products:\n")
	for _, p := range r.products {
		fmt.Fprintf(&b, "  %s: { hold_ttl: %s, redeemers: [%s] }\n", p.name, p.holdTTL, p.service)
	}
	list := func(ps []string) string { return "[" + strings.Join(ps, ", ") + "]" }
	if len(r.exclusive) > 0 {
		b.WriteString("exclusive:\n")
		for _, g := range r.exclusive {
			fmt.Fprintf(&b, "  - %s\n", list(g))
		}
	}
	if len(r.families) > 0 {
		b.WriteString("limits:\n")
		for _, f := range r.families {
			fmt.Fprintf(&b, "  - { name: %s, title: %s, max: %d, products: %s }\n", f.name, f.title, f.max, list(f.products))
		}
	}
	if len(r.coolingOff) > 0 {
		b.WriteString("cooling_off:\n")
		for _, c := range r.coolingOff {
			fmt.Fprintf(&b, "  - { name: %s, after: %s, products: %s, period: %s }\n", c.name, list(c.after), list(c.products), c.period)
		}
	}
	return b.String()
}

// violations says how a customer holding held (product -> check id) at
// one moment breaks the exclusive groups and family limits; none if not.
func (r modelRules) violations(held map[string]string) []string {
	var out []string
	for _, g := range r.exclusive {
		if in := heldOf(held, g); len(in) > 1 {
			out = append(out, fmt.Sprintf("held %s of exclusive group %v", strings.Join(in, " and "), g))
		}
	}
	for _, f := range r.families {
		if in := heldOf(held, f.products); len(in) > f.max {
			out = append(out, fmt.Sprintf("held %s: more than family limit %s's %d", strings.Join(in, ", "), f.name, f.max))
		}
	}
	return out
}

// heldOf lists the products of set in held, with their checks.
func heldOf(held map[string]string, set []string) []string {
	var out []string
	for _, p := range set {
		if id, ok := held[p]; ok {
			out = append(out, fmt.Sprintf("%s (check %s)", p, id))
		}
	}
	slices.Sort(out)
	return out
}

// refusal is an outcome counted in the model's stats: op (its first word:
// check, apply, redeem) refused with reason.
type refusal struct{ op, reason string }

// refusals are the refusals each rule must have caused at least once in a
// run, so that what the rule forbids was tried: a family limit at the
// check (a redemption can meet one only after an import, as a customer has
// one hold at a time), a cooling-off period at the check and at the
// redemption, as the product service answers it (closeBetween): a refusal
// arbiter answered 500 would reach the client as arbiter_unavailable.
func (r modelRules) refusals() []refusal {
	var out []refusal
	if len(r.families) > 0 {
		out = append(out, refusal{"check", "family_limit"})
	}
	if len(r.coolingOff) > 0 {
		out = append(out, refusal{"check", "cooling_off"}, refusal{"redeem", "cooling_off"})
	}
	return out
}

// closeBetween is a customer approved for a product of rule c at the
// branch who closes a product of c's after before the service redeems:
// once the close has released the grant, arbiter must refuse the
// redemption (the rule applies again there), which (d) checks.
func (w *worker) closeBetween(ctx context.Context, c coolingOff, customer string) {
	f, after := w.m.fleets[c.products[0]], w.m.fleets[c.after[0]]
	ch := w.check(ctx, f, customer, "close between")
	if ch == nil {
		return
	}
	closed := call(ctx, http.MethodDelete, after.url(w.rng)+"/v1/products/"+customer, nil)
	ans := call(ctx, http.MethodPost, f.url(w.rng)+"/v1/applications", map[string]string{"customer_id": customer, "token": ch.Token})
	w.m.stats.add(fmt.Sprintf("redeem after close %s %d: %d %s", after.id, closed.Status, ans.Status, ans.str("reason")))
}

// auditLog gathers every customer's redeemed, released and cancelled
// events from
// arbiter's audit, read during the run as well as after it: a customer's
// audit keeps only its latest state changes.
type auditLog struct {
	mu     sync.Mutex
	events map[string]map[string]client.Event // customer -> identity -> event
}

// collect reads the redeemed, released and cancelled events of every
// customer.
func (l *auditLog) collect(ctx context.Context, m *model) error {
	for _, c := range m.customers() {
		evs, err := m.audit(ctx, c)
		if err != nil {
			return err
		}
		l.mu.Lock()
		if l.events == nil {
			l.events = map[string]map[string]client.Event{}
		}
		if l.events[c] == nil {
			l.events[c] = map[string]client.Event{}
		}
		for _, e := range evs {
			l.events[c][fmt.Sprintf("%s|%s|%s|%d", e.Type, e.Product, e.CheckID, e.At.UnixMilli())] = e
		}
		l.mu.Unlock()
	}
	return nil
}

// of returns a customer's gathered events of type typ, oldest first.
func (l *auditLog) of(customer, typ string) []client.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []client.Event
	for _, e := range l.events[customer] {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b client.Event) int { return a.At.Compare(b.At) })
	return out
}

// audit reads a customer's latest redeemed, released and cancelled
// events (a redemption the rules refuse cancels its hold), as the branch
// may.
func (m *model) audit(ctx context.Context, customer string) ([]client.Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		m.sys.arbiter.URL+"/v1/customers/"+url.PathEscape(customer)+"/audit?limit=200&type=redeemed,released,cancelled", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+branchKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("audit of %s: %d", customer, resp.StatusCode)
	}
	var out struct {
		Events []client.Event `json:"events"`
	}
	return out.Events, json.NewDecoder(resp.Body).Decode(&out)
}

// issued is one product a service issued: still held, or closed since.
type issued struct {
	customer, checkID string
	issuedAt          time.Time
	closedAt          time.Time // zero while held
}

// readIssued reads every product a service's file records as issued.
func readIssued(tb testing.TB, path string) map[string]issued {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT customer_id, check_id, issued_at, '' FROM products
		UNION ALL SELECT customer_id, check_id, issued_at, closed_at FROM closed_products`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]issued{} // by check id
	for rows.Next() {
		var (
			p                  issued
			issuedAt, closedAt string
		)
		if err := rows.Scan(&p.customer, &p.checkID, &issuedAt, &closedAt); err != nil {
			tb.Fatal(err)
		}
		if p.issuedAt, err = time.Parse(time.RFC3339Nano, issuedAt); err != nil {
			tb.Fatal(err)
		}
		if closedAt != "" {
			if p.closedAt, err = time.Parse(time.RFC3339Nano, closedAt); err != nil {
				tb.Fatal(err)
			}
		}
		out[p.checkID] = p
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// assertCoolingOff checks (d) and (e) from the gathered audit and the
// services' files. (d) compares arbiter's times with one another, as the
// rule does, for an end Redis ran before the grant (the archive's record
// numbers give that order): a script carries the time arbiter sent it, so
// a release a stalled link delivered after a redemption can bear an
// earlier time, while the redemption, which ran first, rightly saw no end. (e) compares them with the services': arbiter's are Redis's
// clock in whole milliseconds, read as the host's clock plus an offset
// measured to within half a TIME round trip (redisstore.Clock), the
// services' the host's in nanoseconds; every process runs on one host, so
// the two differ by that measurement's error and the truncation only,
// which clockError bounds. The nemesis stalls the very link the offset is
// measured over (stallRedisLink: up to 2 s): a measurement taken in a
// stall is off by up to half of it until the next one (15 s later), so the
// bound is a second, not the few milliseconds of a quiet loopback (a CI
// run failed on 50 ms with every grant of one window 130 ms late).
func (m *model) assertCoolingOff(t *testing.T) {
	t.Helper()
	if len(m.rules.coolingOff) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.auditLog.collect(ctx, m); err != nil {
		t.Fatalf("audit: %v", err)
	}
	products := map[string]map[string]issued{} // product -> check id -> issued
	for p, f := range m.fleets {
		products[p] = readIssued(t, f.db)
	}
	const clockError = time.Second
	var redeemed, released, matched, refused int
	byVersion := map[string]int{}
	for _, customer := range m.customers() {
		grants, ends := m.auditLog.of(customer, "redeemed"), m.auditLog.of(customer, "released")
		order := recordOrder(m.archived.events[customer])
		for _, g := range grants {
			byVersion[g.PolicyVersion]++
		}
		redeemed, released = redeemed+len(grants), released+len(ends)
		for _, e := range m.auditLog.of(customer, "cancelled") {
			if e.Reason == "cooling_off" {
				refused++
			}
		}
		// (e)
		for _, g := range grants {
			if p, ok := products[g.Product][g.CheckID]; ok {
				matched++
				if p.issuedAt.Add(clockError).Before(g.At) {
					t.Errorf("(e) %s's %s (check %s) was issued at %s, before arbiter granted it at %s",
						customer, g.Product, g.CheckID, p.issuedAt.Format(time.RFC3339Nano), g.At.Format(time.RFC3339Nano))
				}
			}
		}
		for _, e := range ends {
			if p, ok := products[e.Product][e.CheckID]; ok && !p.closedAt.IsZero() && e.At.Add(clockError).Before(p.closedAt) {
				t.Errorf("(e) %s's %s (check %s) ended at arbiter at %s, before its service closed it at %s",
					customer, e.Product, e.CheckID, e.At.Format(time.RFC3339Nano), p.closedAt.Format(time.RFC3339Nano))
			}
		}
		// (d): each grant against the latest end before it.
		for _, c := range m.rules.coolingOff {
			for _, g := range grants {
				if !slices.Contains(c.products, g.Product) {
					continue
				}
				var last *client.Event
				for i, e := range ends {
					if slices.Contains(c.after, e.Product) && e.At.Before(g.At) && ranBefore(order, e, g) {
						last = &ends[i]
					}
				}
				if last == nil || !g.At.Before(last.At.Add(c.period)) {
					continue
				}
				at := "not issued"
				if p, ok := products[g.Product][g.CheckID]; ok {
					at = "issued by its service at " + p.issuedAt.Format(time.RFC3339Nano)
				}
				t.Errorf("(d) arbiter granted %s %s (check %s) at %s, %v after their %s (check %s) ended at %s, within rule %s's %v; %s",
					customer, g.Product, g.CheckID, g.At.Format(time.RFC3339Nano), g.At.Sub(last.At), last.Product, last.CheckID,
					last.At.Format(time.RFC3339Nano), c.name, c.period, at)
			}
		}
	}
	t.Logf("audit: %d redemptions (%d of them issued and found at their service), %d releases, %d redemptions refused cooling_off",
		redeemed, matched, released, refused)
	if !m.rules.switchAt.IsZero() {
		// The switch: grants were decided under each version, none under
		// another name.
		t.Logf("audit: redemptions by policy version %v (switch at %s)", byVersion, m.rules.switchAt.Format(time.RFC3339))
		if byVersion[modelVersions[0]] == 0 || byVersion[modelVersions[1]] == 0 || len(byVersion) != 2 {
			t.Errorf("audit: redemptions by policy version %v; want some under each of %v, and only those", byVersion, modelVersions)
		}
	}
	if redeemed == 0 || released == 0 || matched == 0 {
		t.Errorf("audit: %d redemptions, %d releases, %d issued: nothing for (d) and (e) to check", redeemed, released, matched)
	}
	if refused == 0 {
		t.Errorf("audit: no redemption was refused cooling_off: the workload never redeemed after a close (closeBetween), or arbiter does not apply the rule again at redemption")
	}
}

// recordOrder maps a customer's archived records, by type and check id, to
// their numbers: the order Redis ran the scripts that wrote them.
func recordOrder(recs []validation.Record) map[string]int64 {
	out := make(map[string]int64, len(recs))
	for _, r := range recs {
		out[string(r.Type)+"|"+r.CheckID] = r.Seq
	}
	return out
}

// ranBefore says whether Redis ran event a before event b, by their
// archived records' numbers; by their times when either is not archived.
func ranBefore(order map[string]int64, a, b client.Event) bool {
	sa, okA := order[a.Type+"|"+a.CheckID]
	sb, okB := order[b.Type+"|"+b.CheckID]
	if !okA || !okB {
		return a.At.Before(b.At)
	}
	return sa < sb
}
