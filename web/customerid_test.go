package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/web"
)

// TestCustomerIDsAreCaseInsensitive: C-1 and c-1 are one customer at every
// entry of the API, known and shown as C-1.
func TestCustomerIDsAreCaseInsensitive(t *testing.T) {
	a := newAPI(t)

	t.Run("a hold for C-1 refuses a conflicting check for c-1", func(t *testing.T) {
		wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "C-1", "product": "credit_card"}), http.StatusCreated)
		wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "c-1", "product": "personal_loan"}),
			http.StatusConflict, validation.ReasonHoldExists)
	})

	t.Run("c-1 shows C-1's hold", func(t *testing.T) {
		r := a.do(t, "GET", "/v1/customers/c-1", checkerKey, nil)
		wantStatus(t, r, http.StatusOK)
		if r.str("customer_id") != "C-1" || r.body["hold"] == nil {
			t.Fatalf("GET c-1 = %s, want C-1 with its hold", r.raw)
		}
		audit := a.do(t, "GET", "/v1/customers/c-1/audit", checkerKey, nil)
		if audit.str("customer_id") != "C-1" || !strings.Contains(string(audit.raw), `"checked"`) {
			t.Fatalf("audit of c-1 = %s, want C-1's", audit.raw)
		}
	})

	t.Run("a check for c-2 is C-2's, its check id too; redeemed and refused either way", func(t *testing.T) {
		chk := a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "c-2", "product": "credit_card"})
		wantStatus(t, chk, http.StatusCreated)
		if chk.str("customer_id") != "C-2" || !strings.HasSuffix(chk.str("check_id"), "_C-2") {
			t.Fatalf("check for c-2 = %s, want customer C-2 in the id too", chk.raw)
		}
		if got := a.do(t, "GET", "/v1/checks/"+chk.str("check_id"), checkerKey, nil); got.str("customer_id") != "C-2" {
			t.Fatalf("GET its check = %s", got.raw)
		}
		wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"customer_id": "c-2", "product": "credit_card", "otp": chk.str("otp")}), http.StatusCreated)
		wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "C-2", "product": "personal_loan"}),
			http.StatusConflict, validation.ReasonConflictingProduct)
		wantStatus(t, a.do(t, "DELETE", "/v1/customers/c-2/products/credit_card", cardKey, nil), http.StatusNoContent)
		wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "C-2", "product": "personal_loan"}), http.StatusCreated)
	})

	t.Run("an import and a block for c-3 are C-3's", func(t *testing.T) {
		wantStatus(t, a.do(t, "PUT", "/v1/customers/c-3/products/credit_card", adminKey, nil), http.StatusCreated)
		wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "C-3", "product": "personal_loan"}),
			http.StatusConflict, validation.ReasonConflictingProduct)
		block := a.do(t, "PUT", "/v1/customers/c-4/block", adminKey, map[string]string{"reason": "fraud review"})
		wantStatus(t, block, http.StatusOK)
		if block.str("customer_id") != "C-4" {
			t.Fatalf("block of c-4 = %s", block.raw)
		}
		wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "C-4", "product": "credit_card"}),
			http.StatusConflict, validation.ReasonCustomerBlocked)
		elig := a.do(t, "GET", "/v1/customers/c-4/eligibility?product=credit_card", checkerKey, nil)
		if elig.str("customer_id") != "C-4" || elig.str("decision") == "allow" {
			t.Fatalf("eligibility of c-4 = %s", elig.raw)
		}
		wantStatus(t, a.do(t, "DELETE", "/v1/customers/c-4/block", adminKey, nil), http.StatusNoContent)
	})

	t.Run("nothing else is folded into an id", func(t *testing.T) {
		for _, id := range []string{" C-5", "C-5 ", "\u017f-5", "C-\u0131"} { // the long s and the dotless i upper-case to S and I
			wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": id, "product": "credit_card"}),
				http.StatusBadRequest, validation.ReasonInvalidRequest)
		}
	})
}

// TestFeedCustomerIDsAreCaseInsensitive: a feed's r-3 is arbiter's R-3, so
// a card listed for r-3 and a loan for R-3 are one customer's double
// holding, not two customers' imports.
func TestFeedCustomerIDsAreCaseInsensitive(t *testing.T) {
	since := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
	a := newAPI(t, func(cfg *web.Config, _ *string) {
		cfg.Reconciler = &reconcile.Reconciler{Sources: []reconcile.Source{
			{Product: "credit_card", Name: "card-service", Feed: onePageFeed{{CustomerID: "r-3", Product: "credit_card", IssuedAt: since}}},
			{Product: "personal_loan", Name: "loan-service", Feed: onePageFeed{{CustomerID: "R-3", Product: "personal_loan", IssuedAt: since}}},
		}}
	})
	started := a.do(t, "POST", "/v1/reconciliations", adminKey, nil)
	wantStatus(t, started, http.StatusAccepted)
	var run reply
	deadline := time.Now().Add(10 * time.Second)
	for run = a.do(t, "GET", "/v1/reconciliations/"+started.str("id"), adminKey, nil); run.str("status") == "running"; run = a.do(t, "GET", "/v1/reconciliations/"+started.str("id"), adminKey, nil) {
		if time.Now().After(deadline) {
			t.Fatalf("still running after 10s: %s", run.raw)
		}
		time.Sleep(10 * time.Millisecond) // the run goes on in the server's goroutine
	}
	if !strings.Contains(string(run.raw), `"double_holding":1,"imported":0`) || !strings.Contains(string(run.raw), `"customer_id":"R-3"`) {
		t.Fatalf("run = %s, want r-3 and R-3 as one customer's double holding", run.raw)
	}
	wantStatus(t, a.do(t, "POST", "/v1/cases/r-3/resolution", adminKey, map[string]string{"note": "customer chose the card"}), http.StatusOK)
}
