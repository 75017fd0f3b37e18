package web_test

import (
	"net/http"
	"testing"

	"github.com/arbiter-bank/arbiter/validation"
)

// TestAuditTypeFilter: ?type= keeps the listed event types only; an
// unknown type is 400.
func TestAuditTypeFilter(t *testing.T) {
	a := newAPI(t)
	a.mustCheck(t, "C-au-1", "credit_card")
	wantStatus(t, a.check(t, checkerKey, "C-au-1", "personal_loan"), http.StatusConflict, validation.ReasonHoldExists)

	r := a.do(t, "GET", "/v1/customers/C-au-1/audit?type=refused", checkerKey, nil)
	wantStatus(t, r, http.StatusOK)
	events, _ := r.body["events"].([]any)
	if len(events) != 1 || events[0].(map[string]any)["type"] != "refused" {
		t.Fatalf("type=refused: %v", r.body)
	}
	r = a.do(t, "GET", "/v1/customers/C-au-1/audit?type=checked,refused", checkerKey, nil)
	if events, _ := r.body["events"].([]any); len(events) != 2 {
		t.Fatalf("type=checked,refused: %v", r.body)
	}
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-au-1/audit?type=bogus", checkerKey, nil), http.StatusBadRequest, validation.ReasonInvalidRequest)
}
