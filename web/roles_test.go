package web_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/web"
)

// TestRouteRoles calls every route as a client of each role, and with no
// key, and asserts the roles docs/api.md's tables document: a client
// with none of the route's roles gets 403 forbidden, one with a role (or
// admin, which has them all) gets past the role check to the route's own
// answer. The table must list every operation of openapi.yaml, which
// TestOpenAPIListsEveryRoute holds to the routes served.
func TestRouteRoles(t *testing.T) {
	const (
		checker  = validation.RoleChecker
		redeemer = validation.RoleRedeemer
		admin    = validation.RoleAdmin
	)
	anyClient := []validation.Role{checker, redeemer, admin}
	checkBody := func(customer string) any { return map[string]string{"customer_id": customer, "product": "credit_card"} }
	fixed := func(body any) func(string) any { return func(string) any { return body } }
	type route struct {
		method, path string                    // as in openapi.yaml
		roles        []validation.Role         // nil: public, no key needed
		body         func(customer string) any // nil: no body
		ok           int                       // the status of a caller with the role, on a new customer
		reason       validation.Reason         // and its reason, for an error
	}
	routes := []route{
		{method: "POST", path: "/v1/checks", roles: []validation.Role{checker}, body: checkBody, ok: http.StatusCreated},
		{method: "GET", path: "/v1/checks/{check_id}", roles: []validation.Role{checker}, ok: http.StatusNotFound, reason: validation.ReasonCheckNotFound},
		{method: "DELETE", path: "/v1/checks/{check_id}", roles: []validation.Role{checker, redeemer}, ok: http.StatusNotFound, reason: validation.ReasonCheckNotFound},
		{method: "POST", path: "/v1/redemptions", roles: []validation.Role{redeemer}, body: fixed(map[string]string{"token": "x"}), ok: http.StatusForbidden, reason: validation.ReasonTokenInvalid},
		{method: "GET", path: "/v1/customers/{customer_id}", roles: []validation.Role{checker, redeemer}, ok: http.StatusOK},
		{method: "DELETE", path: "/v1/customers/{customer_id}/products/{product}", roles: []validation.Role{redeemer}, ok: http.StatusNotFound, reason: validation.ReasonGrantNotFound},
		{method: "PUT", path: "/v1/customers/{customer_id}/products/{product}", roles: []validation.Role{admin}, body: fixed(map[string]string{}), ok: http.StatusCreated},
		{method: "GET", path: "/v1/customers/{customer_id}/audit", roles: []validation.Role{checker}, ok: http.StatusOK},
		{method: "GET", path: "/v1/customers/{customer_id}/eligibility", roles: []validation.Role{checker}, ok: http.StatusOK},
		{method: "PUT", path: "/v1/customers/{customer_id}/block", roles: []validation.Role{admin}, body: fixed(map[string]string{"reason": "r"}), ok: http.StatusOK},
		{method: "DELETE", path: "/v1/customers/{customer_id}/block", roles: []validation.Role{admin}, ok: http.StatusNotFound, reason: validation.ReasonNotFound},
		{method: "POST", path: "/v1/reconciliations", roles: []validation.Role{admin}, ok: http.StatusNotFound, reason: validation.ReasonNotFound}, // no feeds
		{method: "GET", path: "/v1/reconciliations/{id}", roles: []validation.Role{admin}, ok: http.StatusNotFound, reason: validation.ReasonNotFound},
		{method: "GET", path: "/v1/cases", roles: []validation.Role{checker}, ok: http.StatusOK},
		{method: "POST", path: "/v1/cases/{customer_id}/resolution", roles: []validation.Role{admin}, body: fixed(map[string]string{"note": "n"}), ok: http.StatusNotFound, reason: validation.ReasonNotFound},
		{method: "POST", path: "/v1/policy/impact", roles: []validation.Role{admin}, body: fixed("products: {credit_card: {redeemers: [card-service]}}\n"), ok: http.StatusOK},
		{method: "GET", path: "/v1/ping", roles: anyClient, ok: http.StatusNoContent},
		{method: "GET", path: "/healthz", ok: http.StatusOK},
		{method: "GET", path: "/readyz", ok: http.StatusOK},
		{method: "GET", path: "/.well-known/jwks.json", ok: http.StatusOK},
		{method: "GET", path: "/openapi.yaml", ok: http.StatusOK},
		{method: "GET", path: "/metrics", ok: http.StatusOK},
	}

	t.Run("the table lists every operation of openapi.yaml", func(t *testing.T) {
		var listed, documented []string
		for _, r := range routes {
			listed = append(listed, r.method+" "+r.path)
		}
		for path, item := range loadSpec(t).Paths.Map() {
			for method := range item.Operations() {
				documented = append(documented, method+" "+path)
			}
		}
		slices.Sort(listed)
		slices.Sort(documented)
		if !slices.Equal(listed, documented) {
			t.Fatalf("routes in this test:\n%s\nopenapi.yaml:\n%s", strings.Join(listed, "\n"), strings.Join(documented, "\n"))
		}
	})

	// backoffice redeems cards here, so that the release route answers a
	// redeemer-only client as it answers card-service.
	a := newAPI(t, withPolicy(`
products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service, backoffice] }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
exclusive: [[credit_card, personal_loan]]
`))
	callers := []struct {
		name  string
		key   string
		roles []validation.Role
	}{
		{"no key", "", nil},
		{"checker", checkerKey, []validation.Role{checker}},
		{"redeemer", backKey, []validation.Role{redeemer}},
		{"checker and redeemer", cardKey, []validation.Role{checker, redeemer}},
		{"admin", adminKey, []validation.Role{admin}},
	}
	for i, r := range routes {
		for j, c := range callers {
			if r.roles == nil && c.key != "" {
				continue // public routes: the key is not looked at
			}
			t.Run(fmt.Sprintf("%s %s as %s", r.method, r.path, c.name), func(t *testing.T) {
				customer := fmt.Sprintf("R-%d-%d", i, j)
				path := strings.NewReplacer(
					"{customer_id}", customer,
					"{check_id}", "chk_aaaaaaaaaaaaaaaaaaaa_"+customer,
					"{product}", "credit_card",
					"{id}", "rec_0000000000000000",
				).Replace(r.path)
				if strings.HasSuffix(path, "/eligibility") {
					path += "?product=credit_card"
				}
				var body any
				if r.body != nil {
					body = r.body(customer)
				}
				if r.roles == nil { // not all JSON: the status says it all
					resp, _ := send(t, a.client, r.method, a.url+path, nil)
					if got, want := resp.StatusCode, r.ok; got != want {
						t.Fatalf("status = %d, want %d", got, want)
					}
					return
				}
				got := a.do(t, r.method, path, c.key, body)
				allowed := slices.Contains(c.roles, admin) || slices.ContainsFunc(r.roles, func(role validation.Role) bool { return slices.Contains(c.roles, role) })
				switch {
				case c.key == "":
					wantStatus(t, got, http.StatusUnauthorized, validation.ReasonUnauthorized)
				case !allowed:
					wantStatus(t, got, http.StatusForbidden, validation.ReasonForbidden)
				case r.reason != "":
					wantStatus(t, got, r.ok, r.reason)
				default:
					wantStatus(t, got, r.ok)
				}
			})
		}
	}
}

// TestCheckOwnership holds GET and DELETE /v1/checks/{id} to who placed
// the check: each caller reads and then cancels a live hold of each
// ownership (placer × product). The current OTP is shown to its placer
// only (for the branch UI: the agent who placed it, not every agent
// sharing the branch-ui client); a check may be cancelled by its placer,
// by a redeemer of its product, by an admin or by a signed-in branch agent,
// and the cancellation is audited with that agent; everyone else gets 403
// forbidden, product services included, though they are checkers.
func TestCheckOwnership(t *testing.T) {
	a := newAPI(t)
	// The ownerships: who placed a check of which product.
	type owner struct {
		name, product string
		place         caller
	}
	owners := []owner{
		{"portal-card", "credit_card", a.bearer(checkerKey)},
		{"portal-loan", "personal_loan", a.bearer(checkerKey)},
		{"card-card", "credit_card", a.bearer(cardKey)},
		{"loan-card", "credit_card", a.bearer(loanKey)}, // a product service's own check of another product
		{"ana-card", "credit_card", a.agent(t, uiAgent, uiPassword)},
	}
	all := []string{"portal-card", "portal-loan", "card-card", "loan-card", "ana-card"}
	callers := []struct {
		name          string
		call          caller
		actor, agent  string   // as audited
		read          int      // status of GET
		otpOf, cancel []string // the ownerships whose OTP it sees, whose hold it may cancel
	}{
		{"branch-portal (checker)", a.bearer(checkerKey), "branch-portal", "", http.StatusOK,
			[]string{"portal-card", "portal-loan"}, []string{"portal-card", "portal-loan"}},
		{"card-service (checker, redeemer of cards)", a.bearer(cardKey), "card-service", "", http.StatusOK,
			[]string{"card-card"}, []string{"portal-card", "card-card", "loan-card", "ana-card"}},
		{"loan-service (checker, redeemer of loans)", a.bearer(loanKey), "loan-service", "", http.StatusOK,
			[]string{"loan-card"}, []string{"portal-loan", "loan-card"}},
		{"backoffice (redeemer of nothing)", a.bearer(backKey), "backoffice", "", http.StatusForbidden,
			nil, nil},
		{"ops (admin)", a.bearer(adminKey), "ops", "", http.StatusOK,
			nil, all},
		{"agent ana", a.agent(t, uiAgent, uiPassword), web.BranchClientID, uiAgent, http.StatusOK,
			[]string{"ana-card"}, all},
		{"agent bruno", a.agent(t, uiOtherAgent, uiOtherPasswrd), web.BranchClientID, uiOtherAgent, http.StatusOK,
			nil, all},
	}
	for i, c := range callers {
		for j, o := range owners {
			t.Run(c.name+" on "+o.name, func(t *testing.T) {
				customer := fmt.Sprintf("O-%d-%d", i, j)
				placed := o.place(t, "POST", "/v1/checks", map[string]string{"customer_id": customer, "product": o.product})
				wantStatus(t, placed, http.StatusCreated)
				if placed.str("otp") == "" {
					t.Fatalf("the placer got no otp: %s", placed.raw)
				}
				path := "/v1/checks/" + placed.str("check_id")

				read := c.call(t, "GET", path, nil)
				wantStatus(t, read, c.read)
				if c.read == http.StatusOK {
					sees := slices.Contains(c.otpOf, o.name)
					// The code itself may have moved on to the next 30 s
					// period since the check was placed: presence is what
					// the rule decides.
					if got, want := len(read.str("otp")) == 6 && read.str("otp_expires_at") != "", sees; got != want {
						t.Errorf("sees the placer's otp = %v, want %v: %s", got, want, read.raw)
					}
					if got, want := read.body["otp"] != nil || read.body["otp_expires_at"] != nil, sees; got != want {
						t.Errorf("otp or otp_expires_at shown = %v, want %v: %s", got, want, read.raw)
					}
				}

				if !slices.Contains(c.cancel, o.name) {
					wantStatus(t, c.call(t, "DELETE", path, nil), http.StatusForbidden, validation.ReasonForbidden)
					if got := a.do(t, "GET", path, adminKey, nil); got.str("status") != "held" {
						t.Fatalf("after a refused cancel the check is %q, want held", got.str("status"))
					}
					return
				}
				wantStatus(t, c.call(t, "DELETE", path, nil), http.StatusNoContent)
				events := a.do(t, "GET", "/v1/customers/"+customer+"/audit?limit=1", adminKey, nil).body["events"].([]any)
				ev := events[0].(map[string]any)
				if ev["type"] != "cancelled" || ev["actor"] != c.actor || (ev["agent"] != nil && ev["agent"] != c.agent) || (ev["agent"] == nil) != (c.agent == "") {
					t.Errorf("audit = %v, want cancelled by %s for agent %q", ev, c.actor, c.agent)
				}
			})
		}
	}
}

// TestClientsReserveTheBranchID: no API key may act as the branch UI's
// client, which would make it the placer of every agent's checks (and
// show it their codes).
func TestClientsReserveTheBranchID(t *testing.T) {
	_, err := clientauth.Parse([]byte("clients:\n  - { id: " + web.BranchClientID + ", key: test-branch-ui-key-01, roles: [checker] }\n"))
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("clientauth.Parse(id %s) = %v, want reserved", web.BranchClientID, err)
	}
}
