package validation_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/inmem"
)

// candidateYAML is a bank's candidate: at most 2 unsecured credit
// products, no personal loan within 90 days of a credit card's end.
const candidateYAML = `
version: "2027-01"
products:
  credit_card:   { title: Credit card,   redeemers: [card-service] }
  store_card:    { title: Store card,    redeemers: [card-service] }
  overdraft:     { title: Overdraft,     redeemers: [card-service] }
  personal_loan: { title: Personal loan, redeemers: [loan-service] }
limits:
  - { name: unsecured_credit, title: unsecured credit products, max: 2, products: [credit_card, store_card, overdraft] }
cooling_off:
  - { name: loan_after_card, after: [credit_card], products: [personal_loan], period: 90d }
`

// scanStore is a Store that can scan: the customers given, in batches of
// two. Its other methods are never called.
type scanStore struct {
	validation.Store
	customers []validation.CustomerStanding
	got       validation.ScanRequest
}

func (s *scanStore) ScanStandings(ctx context.Context, req validation.ScanRequest, fn func([]validation.CustomerStanding) error) error {
	s.got = req
	for batch := range slices.Chunk(s.customers, 2) {
		if err := fn(batch); err != nil {
			return err
		}
	}
	return nil
}

var (
	impactNow   = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	impactAdmin = validation.Actor{ID: "ops", Roles: []validation.Role{validation.RoleAdmin}}
)

func impactDay(n int) time.Time { return impactNow.AddDate(0, 0, n) }

func impactGrant(customer, product, id string, at time.Time) validation.Grant {
	return validation.Grant{CustomerID: customer, Product: product, CheckID: id, GrantedAt: at}
}

func impactChecked(product, id string, at time.Time) validation.Event {
	return validation.Event{Type: validation.EventChecked, Product: product, CheckID: id, At: at}
}

// impactLedger: A holds three unsecured products (one too many), B two
// (allowed), D took a loan ten days after its card ended, E checked a
// product the candidate does not know, F holds an old card and a loan.
func impactLedger() []validation.CustomerStanding {
	return []validation.CustomerStanding{
		{CustomerID: "A", Standing: validation.Standing{Grants: []validation.Grant{
			impactGrant("A", "overdraft", "chk_a3", impactDay(-3)), impactGrant("A", "credit_card", "chk_a1", impactDay(-20)), impactGrant("A", "store_card", "chk_a2", impactDay(-10)),
		}}, Checked: []validation.Event{
			impactChecked("overdraft", "chk_a3", impactDay(-3)), impactChecked("store_card", "chk_a2", impactDay(-10)), impactChecked("credit_card", "chk_a1", impactDay(-20)),
		}},
		{CustomerID: "B", Standing: validation.Standing{Grants: []validation.Grant{
			impactGrant("B", "credit_card", "chk_b1", impactDay(-400)), impactGrant("B", "store_card", "chk_b2", impactDay(-5)),
		}}, Checked: []validation.Event{impactChecked("store_card", "chk_b2", impactDay(-5))}},
		{CustomerID: "D", Standing: validation.Standing{
			Grants: []validation.Grant{impactGrant("D", "personal_loan", "chk_d2", impactDay(-2))},
			Ended:  map[string]time.Time{"credit_card": impactDay(-12)},
		}, Checked: []validation.Event{impactChecked("personal_loan", "chk_d2", impactDay(-2))}},
		{CustomerID: "E", Checked: []validation.Event{impactChecked("gold_card", "chk_e1", impactDay(-1))}},
		{CustomerID: "F", Standing: validation.Standing{Grants: []validation.Grant{
			impactGrant("F", "credit_card", "chk_f1", impactDay(-900)), impactGrant("F", "personal_loan", "chk_f2", impactDay(-800)),
		}}, Checked: []validation.Event{impactChecked("credit_card", "chk_f0", impactDay(-40))}}, // before since: not counted
	}
}

func TestImpact(t *testing.T) {
	candidate, err := policyfile.Parse([]byte(candidateYAML))
	if err != nil {
		t.Fatal(err)
	}
	store := &scanStore{customers: impactLedger()}
	svc := &validation.Service{Store: store, Policy: candidate, Now: func() time.Time { return impactNow }}

	got, err := svc.Impact(context.Background(), impactAdmin, candidate, validation.ImpactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := store.got.Since, impactDay(-30); !got.Equal(want) {
		t.Errorf("scan since = %v, want %v (30 days)", got, want)
	}
	if got.PolicyVersion != "2027-01" || !got.At.Equal(impactNow) {
		t.Errorf("version, at = %q, %v; want 2027-01, now", got.PolicyVersion, got.At)
	}
	if got, want := got.CustomersScanned, 5; got != want {
		t.Errorf("customers scanned = %d, want %d", got, want)
	}
	if got, want := got.CustomersInViolation, 1; got != want {
		t.Errorf("customers in violation = %d, want %d", got, want)
	}
	if len(got.Examples) != 1 || got.Examples[0].CustomerID != "A" || len(got.Examples[0].Violations) != 1 {
		t.Fatalf("examples = %+v, want customer A with one violation", got.Examples)
	}
	v := got.Examples[0].Violations[0]
	if v.Reason != validation.ReasonFamilyLimit || v.Rule != "unsecured_credit" || v.Grant.CheckID != "chk_a3" {
		t.Errorf("violation = %+v, want family_limit unsecured_credit at chk_a3 (the later grant)", v)
	}
	if want := "Customer holds 2 of 2 unsecured credit products: Credit card since 11 Nov 2026 and Store card since 21 Nov 2026 (rule unsecured_credit)."; v.Detail != want {
		t.Errorf("detail = %q\nwant     %q", v.Detail, want)
	}

	rc := got.RecentChecks
	if rc.Total != 6 || rc.WouldRefuse != 3 {
		t.Errorf("recent checks = %d, would refuse %d; want 6, 3", rc.Total, rc.WouldRefuse)
	}
	if got, want := rc.Share, 0.5; got != want {
		t.Errorf("share = %v, want %v", got, want)
	}
	want := map[validation.Reason]int{validation.ReasonFamilyLimit: 1, validation.ReasonCoolingOff: 1, validation.ReasonInvalidRequest: 1}
	if !maps.Equal(rc.ByReason, want) {
		t.Errorf("by reason = %v, want %v", rc.ByReason, want)
	}
}

func TestImpactExamplesAreTheSmallestIDs(t *testing.T) {
	candidate, err := policyfile.Parse([]byte(candidateYAML))
	if err != nil {
		t.Fatal(err)
	}
	var customers []validation.CustomerStanding
	for _, id := range []string{"M", "C", "X", "A", "K"} {
		customers = append(customers, validation.CustomerStanding{CustomerID: id, Standing: validation.Standing{Grants: []validation.Grant{
			impactGrant(id, "credit_card", id+"1", impactDay(-3)), impactGrant(id, "credit_card", id+"2", impactDay(-2)),
		}}})
	}
	svc := &validation.Service{Store: &scanStore{customers: customers}, Policy: candidate, Now: func() time.Time { return impactNow }}
	got, err := svc.Impact(context.Background(), impactAdmin, candidate, validation.ImpactOptions{Examples: 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range got.Examples {
		ids = append(ids, x.CustomerID)
		if len(x.Violations) != 1 || x.Violations[0].Reason != validation.ReasonAlreadyHoldsProduct {
			t.Errorf("%s: violations %+v, want one already_holds_product (the pair once)", x.CustomerID, x.Violations)
		}
	}
	if got, want := strings.Join(ids, ","), "A,C,K"; got != want {
		t.Errorf("examples = %s, want %s", got, want)
	}
	if got.CustomersInViolation != 5 {
		t.Errorf("customers in violation = %d, want 5", got.CustomersInViolation)
	}
}

func TestImpactRefusals(t *testing.T) {
	candidate, err := policyfile.Parse([]byte(candidateYAML))
	if err != nil {
		t.Fatal(err)
	}
	svc := &validation.Service{Store: &scanStore{}, Policy: candidate, Now: func() time.Time { return impactNow }}
	for _, tc := range []struct {
		name  string
		actor validation.Actor
		opts  validation.ImpactOptions
		want  *validation.Error
	}{
		{"not an impactAdmin", validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleChecker, validation.RoleRedeemer}}, validation.ImpactOptions{}, validation.ErrForbidden},
		{"too many examples", impactAdmin, validation.ImpactOptions{Examples: validation.MaxImpactExamples + 1}, validation.ErrInvalidRequest},
		{"since in the future", impactAdmin, validation.ImpactOptions{Since: impactDay(1)}, validation.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := svc.Impact(context.Background(), tc.actor, candidate, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("a store that cannot scan", func(t *testing.T) {
		svc := &validation.Service{Store: struct{ validation.Store }{}, Policy: candidate}
		if _, err := svc.Impact(context.Background(), impactAdmin, candidate, validation.ImpactOptions{}); !errors.Is(err, validation.ErrNotFound) {
			t.Fatalf("err = %v, want not_found", err)
		}
	})
}

// TestImpactOnInmem: the in-memory store's scan, through the Service: a
// ledger built by imports, checks and a release, under the live policy
// (the candidate without its rules), judged by the candidate.
func TestImpactOnInmem(t *testing.T) {
	candidate, err := policyfile.Parse([]byte(candidateYAML))
	if err != nil {
		t.Fatal(err)
	}
	live, err := policyfile.Parse([]byte(strings.Split(candidateYAML, "limits:")[0]))
	if err != nil {
		t.Fatal(err)
	}
	now := impactDay(-30)
	svc := &validation.Service{Store: inmem.New(inmem.Options{}), Policy: live, Now: func() time.Time { return now }}
	ctx := context.Background()
	checker := validation.Actor{ID: "branch-portal", Roles: []validation.Role{validation.RoleChecker}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now = impactDay(-1)
	for i, p := range []string{"credit_card", "store_card", "overdraft"} { // A: one more than the candidate allows
		_, err := svc.Import(ctx, impactAdmin, "A", p, impactDay(-20+i))
		must(err)
	}
	_, err = svc.Import(ctx, impactAdmin, "C", "credit_card", impactDay(-20))
	must(err)
	now = impactDay(0).Add(-2 * time.Hour)
	b, _, err := svc.Check(ctx, checker, validation.CheckInput{CustomerID: "B", Product: "credit_card"}) // B: a check, cancelled
	must(err)
	_, err = svc.Cancel(ctx, checker, b.ID)
	must(err)
	_, err = svc.Release(ctx, impactAdmin, "C", "credit_card", "") // C: its card ends, then a loan is checked
	must(err)
	now = impactDay(0).Add(-time.Hour)
	_, _, err = svc.Check(ctx, checker, validation.CheckInput{CustomerID: "C", Product: "personal_loan"})
	must(err)

	now = impactDay(0)
	got, err := svc.Impact(ctx, impactAdmin, candidate, validation.ImpactOptions{})
	must(err)
	rc := got.RecentChecks
	if got.CustomersScanned != 3 || got.CustomersInViolation != 1 || len(got.Examples) != 1 || got.Examples[0].CustomerID != "A" {
		t.Fatalf("impact = %+v, want 3 scanned, A in violation", got)
	}
	if rc.Total != 2 || rc.WouldRefuse != 1 || rc.ByReason[validation.ReasonCoolingOff] != 1 {
		t.Fatalf("recent checks = %+v, want 2, C's loan refused (cooling_off)", rc)
	}
}

// TestImpactAtChoosesTheVersion: a candidate of two versions is judged by
// the one in force at opts.At.
func TestImpactAtChoosesTheVersion(t *testing.T) {
	body := strings.SplitN(candidateYAML, "products:", 2)[1]
	rules := strings.SplitN(body, "limits:", 2)
	indent := func(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }
	candidate, err := policyfile.Parse([]byte("versions:\n" +
		"  - version: loose\n    products:" + indent(rules[0]) + "\n" +
		"  - version: strict\n    effective_from: 2027-01-01T00:00:00Z\n    products:" + indent(rules[0]) + "limits:" + indent(rules[1]) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	svc := &validation.Service{Store: &scanStore{customers: impactLedger()}, Policy: candidate, Now: func() time.Time { return impactNow }}
	for _, tc := range []struct {
		at      time.Time
		version string
		in      int
	}{
		{time.Time{}, "loose", 0},
		{time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), "strict", 1},
	} {
		got, err := svc.Impact(context.Background(), impactAdmin, candidate, validation.ImpactOptions{At: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		if got.PolicyVersion != tc.version || got.CustomersInViolation != tc.in {
			t.Errorf("at %v: version %q, %d in violation; want %q, %d", tc.at, got.PolicyVersion, got.CustomersInViolation, tc.version, tc.in)
		}
	}
}

// blockingScan is a scanner that holds its scan until released.
type blockingScan struct {
	validation.Store
	entered, release chan struct{}
}

func (s *blockingScan) ScanStandings(ctx context.Context, _ validation.ScanRequest, _ func([]validation.CustomerStanding) error) error {
	close(s.entered)
	<-s.release
	return nil
}

// TestImpactOneAtATime: each report scans the whole ledger, so an instance
// runs one at a time; a second meanwhile is told to retry (unavailable),
// and once the first is done the next runs.
func TestImpactOneAtATime(t *testing.T) {
	candidate, err := policyfile.Parse([]byte(candidateYAML))
	if err != nil {
		t.Fatal(err)
	}
	scan := &blockingScan{entered: make(chan struct{}), release: make(chan struct{})}
	svc := &validation.Service{Store: scan, Policy: candidate, Now: func() time.Time { return impactNow }}
	first := make(chan error)
	go func() {
		_, err := svc.Impact(context.Background(), impactAdmin, candidate, validation.ImpactOptions{})
		first <- err
	}()
	<-scan.entered
	if _, err := svc.Impact(context.Background(), impactAdmin, candidate, validation.ImpactOptions{}); !errors.Is(err, validation.ErrUnavailable) {
		t.Fatalf("a second report while one runs: %v, want unavailable", err)
	}
	close(scan.release)
	if err := <-first; err != nil {
		t.Fatalf("the first report: %v", err)
	}
	scan.entered = make(chan struct{})
	if _, err := svc.Impact(context.Background(), impactAdmin, candidate, validation.ImpactOptions{}); err != nil {
		t.Fatalf("a report after the first: %v", err)
	}
}
