package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/web"
)

// TestOpenAPIContractReconciliation drives the reconciliation and case
// routes through the contract check: a run over two in-memory feeds (one
// import, one double holding), read while and after it runs, the case
// listed and resolved.
func TestOpenAPIContractReconciliation(t *testing.T) {
	since := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
	a := newAPI(t, func(cfg *web.Config, _ *string) {
		cfg.Reconciler = &reconcile.Reconciler{Sources: []reconcile.Source{
			{Product: "credit_card", Name: "card-service", Feed: onePageFeed{
				{CustomerID: "R-1", Product: "credit_card", IssuedAt: since},
				{CustomerID: "R-2", Product: "credit_card", IssuedAt: since},
			}},
			{Product: "personal_loan", Name: "loan-service", Feed: onePageFeed{{CustomerID: "R-2", Product: "personal_loan", IssuedAt: since}}},
		}}
	})
	spec := validateAgainstSpec(t, a.client.Transport)
	a.client.Transport = spec

	started := a.do(t, "POST", "/v1/reconciliations", adminKey, nil)
	wantStatus(t, started, http.StatusAccepted)
	if got := started.header.Get("Location"); got != "/v1/reconciliations/"+started.str("id") {
		t.Errorf("Location = %q", got)
	}
	wantStatus(t, a.do(t, "POST", "/v1/reconciliations", checkerKey, nil), http.StatusForbidden, validation.ReasonForbidden)
	var run reply
	deadline := time.Now().Add(10 * time.Second)
	for {
		run = a.do(t, "GET", "/v1/reconciliations/"+started.str("id")+"?limit=1", adminKey, nil)
		wantStatus(t, run, http.StatusOK)
		if run.str("status") != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running after 10s: %s", run.raw)
		}
		time.Sleep(10 * time.Millisecond) // the run goes on in the server's goroutine
	}
	if got := run.str("status"); got != "done" {
		t.Fatalf("run = %s", run.raw)
	}
	if !strings.Contains(string(run.raw), `"counts":{"check_mismatch":0,"double_holding":1,"imported":1,"orphan_grant":0}`) ||
		!strings.Contains(string(run.raw), `"next":1`) {
		t.Errorf("run = %s", run.raw)
	}
	wantStatus(t, a.do(t, "GET", "/v1/reconciliations/"+started.str("id")+"?offset=1", adminKey, nil), http.StatusOK)
	wantStatus(t, a.do(t, "GET", "/v1/reconciliations/"+started.str("id")+"?limit=0", adminKey, nil), http.StatusBadRequest, validation.ReasonInvalidRequest)
	wantStatus(t, a.do(t, "GET", "/v1/reconciliations/rec_0000000000000000", adminKey, nil), http.StatusNotFound, validation.ReasonNotFound)

	cases := a.do(t, "GET", "/v1/cases", checkerKey, nil)
	wantStatus(t, cases, http.StatusOK)
	if want := "Customer R-2 holds a Credit card at card-service since 1 Mar 2019 and a Personal loan at loan-service since 1 Mar 2019: contact the customer."; !strings.Contains(string(cases.raw), want) {
		t.Errorf("cases = %s\nwant %q", cases.raw, want)
	}
	wantStatus(t, a.do(t, "POST", "/v1/cases/R-2/resolution", adminKey, map[string]string{"note": ""}), http.StatusBadRequest, validation.ReasonInvalidRequest)
	wantStatus(t, a.do(t, "POST", "/v1/cases/R-2/resolution", adminKey, map[string]string{"note": "customer chose the card"}), http.StatusOK)
	wantStatus(t, a.do(t, "POST", "/v1/cases/R-2/resolution", adminKey, map[string]string{"note": "again"}), http.StatusNotFound, validation.ReasonNotFound)
	wantStatus(t, a.do(t, "GET", "/v1/customers/R-2/audit?type=case_opened,case_resolved", checkerKey, nil), http.StatusOK)

	spec.covered(t, "startReconciliation 202", "startReconciliation 403", "getReconciliation 200", "getReconciliation 400",
		"getReconciliation 404", "listCases 200", "resolveCase 200", "resolveCase 400", "resolveCase 404")
}

// heldFeed answers its one (empty) page once release is closed.
type heldFeed struct{ release chan struct{} }

func (f heldFeed) Page(ctx context.Context, after string, limit int) (reconcile.HoldingsPage, error) {
	select {
	case <-f.release:
	case <-ctx.Done():
	}
	return reconcile.HoldingsPage{}, nil
}

// TestReconciliationShapeWhileRunning: the run's document has every
// member the API promises even while running: finished_at null, error "".
func TestReconciliationShapeWhileRunning(t *testing.T) {
	release := make(chan struct{})
	a := newAPI(t, func(cfg *web.Config, _ *string) {
		cfg.Reconciler = &reconcile.Reconciler{Sources: []reconcile.Source{{Product: "credit_card", Name: "card-service", Feed: heldFeed{release}}}}
	})
	spec := validateAgainstSpec(t, a.client.Transport)
	a.client.Transport = spec
	started := a.do(t, "POST", "/v1/reconciliations", adminKey, nil)
	wantStatus(t, started, http.StatusAccepted)
	run := a.do(t, "GET", "/v1/reconciliations/"+started.str("id"), adminKey, nil)
	close(release)
	wantStatus(t, run, http.StatusOK)
	for _, want := range []string{`"finished_at":null`, `"status":"running"`, `"holdings":0,"customers":0,"proven":false,"error":""`, `"error":"","sources"`} {
		if !strings.Contains(string(run.raw), want) {
			t.Errorf("run = %s\nwant it to contain %s", run.raw, want)
		}
	}
}

// TestCaseOpenHoldsTheLine: a reconciliation finds R-3 holding a card at
// the card service and a loan at the loan service while a card check of
// arbiter's is held. Until an admin resolves the case, a check of either
// product is 409 case_open, the held card is not redeemed (409 case_open,
// the hold kept) and the dry run says refuse, naming the case; after the
// resolution the same token redeems.
func TestCaseOpenHoldsTheLine(t *testing.T) {
	since := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
	rec := &reconcile.Reconciler{Sources: []reconcile.Source{
		{Product: "credit_card", Name: "card-service", Feed: onePageFeed{{CustomerID: "R-3", Product: "credit_card", IssuedAt: since}}},
		{Product: "personal_loan", Name: "loan-service", Feed: onePageFeed{{CustomerID: "R-3", Product: "personal_loan", IssuedAt: since}}},
	}}
	a := newAPI(t, func(cfg *web.Config, _ *string) { cfg.Reconciler = rec })
	spec := validateAgainstSpec(t, a.client.Transport)
	a.client.Transport = spec

	held := a.mustCheck(t, "R-3", "credit_card")
	if run, err := rec.Reconcile(context.Background(), "test"); err != nil || run.Counts[reconcile.FindingDoubleHolding] != 1 {
		t.Fatalf("reconcile: %+v, %v", run, err)
	}
	const caseWords = "Customer R-3 holds a Credit card at card-service since 1 Mar 2019 and a Personal loan at loan-service since 1 Mar 2019: contact the customer."
	wantCase := func(t *testing.T, r reply) {
		t.Helper()
		wantStatus(t, r, http.StatusConflict, validation.ReasonCaseOpen)
		var p struct {
			Title      string                 `json:"title"`
			Detail     string                 `json:"detail"`
			Violations []validation.Violation `json:"violations"`
		}
		if err := json.Unmarshal(r.raw, &p); err != nil {
			t.Fatal(err)
		}
		today := time.Now().UTC().Format(validation.DateLayout)
		want := "Customer has an open case since " + today + " about their Credit card and Personal loan: resolve the case first. " + caseWords
		if p.Detail != want || len(p.Violations) == 0 || p.Violations[0].Detail != want {
			t.Errorf("detail = %q\nwant     %q", p.Detail, want)
		}
		if v := p.Violations[0]; v.Reason != validation.ReasonCaseOpen || !slices.Equal(v.Products, []string{"credit_card", "personal_loan"}) ||
			v.Note != caseWords || v.Since.IsZero() {
			t.Errorf("violation = %+v", v)
		}
	}

	t.Run("checks of the case's products are refused", func(t *testing.T) {
		wantCase(t, a.check(t, checkerKey, "R-3", "personal_loan"))
		wantCase(t, a.check(t, cardKey, "R-3", "credit_card"))
	})
	t.Run("the dry run refuses, naming the case", func(t *testing.T) {
		e := a.do(t, "GET", "/v1/customers/R-3/eligibility?product=personal_loan", checkerKey, nil)
		wantStatus(t, e, http.StatusOK)
		for _, want := range []string{`"decision":"refuse"`, `{"rule":"case","verdict":"fail"`, `"reason":"case_open"`, caseWords} {
			if !strings.Contains(string(e.raw), want) {
				t.Errorf("eligibility = %s\nwant it to contain %s", e.raw, want)
			}
		}
	})
	redeem := func() reply {
		return a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": held.str("token")})
	}
	t.Run("the card held before the case is not redeemed while it is open", func(t *testing.T) {
		wantCase(t, redeem())
		cust := a.do(t, "GET", "/v1/customers/R-3", checkerKey, nil)
		if !strings.Contains(string(cust.raw), held.str("check_id")) {
			t.Errorf("the refused redemption dropped the hold: %s", cust.raw)
		}
	})
	t.Run("resolving the case lifts it", func(t *testing.T) {
		wantStatus(t, a.do(t, "POST", "/v1/cases/R-3/resolution", adminKey, map[string]string{"note": "customer closed the loan"}), http.StatusOK)
		wantStatus(t, redeem(), http.StatusCreated)
	})
	spec.covered(t, "createCheck 409", "redeem 409", "getEligibility 200")
}
