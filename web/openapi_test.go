package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/web"
)

// loadSpec parses and validates web/openapi.yaml (examples included).
func loadSpec(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(web.OpenAPISpec())
	if err != nil {
		tb.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		tb.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// specCheck is an http.RoundTripper that validates every request it sends
// and every response it gets against web/openapi.yaml: a request the
// contract forbids must be refused (4xx), and every response, status and
// headers included, must be one the contract describes. It records which
// operation answered which status, so a test can tell what it covered.
type specCheck struct {
	tb     testing.TB
	router routers.Router
	inner  http.RoundTripper

	mu   sync.Mutex
	seen map[string]bool // "operationId status"
}

// validateAgainstSpec wraps inner (nil: http.DefaultTransport) in a specCheck.
func validateAgainstSpec(tb testing.TB, inner http.RoundTripper) *specCheck {
	tb.Helper()
	doc := loadSpec(tb)
	doc.Servers = nil // match any host: the test server's port is random
	router, err := legacy.NewRouter(doc)
	if err != nil {
		tb.Fatalf("openapi router: %v", err)
	}
	if inner == nil {
		inner = http.DefaultTransport
	}
	return &specCheck{tb: tb, router: router, inner: inner, seen: map[string]bool{}}
}

func (s *specCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := s.inner.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if msg := s.check(req, reqBody, resp, respBody); msg != "" {
		s.tb.Errorf("%s %s → %d: %s\nrequest: %s\nresponse: %s", req.Method, req.URL.Path, resp.StatusCode, msg, reqBody, respBody)
	}
	return resp, nil
}

// check returns what is wrong with one exchange, or "".
func (s *specCheck) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) string {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := s.router.FindRoute(r)
	if err != nil {
		// Unknown paths and methods must be refused as such.
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return ""
		}
		return fmt.Sprintf("not in the contract (%v)", err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && resp.StatusCode < 400 {
		return fmt.Sprintf("the server accepted a request the contract forbids: %v", err)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(respBody)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Sprintf("response breaks the contract: %v", err)
	}
	s.mu.Lock()
	s.seen[fmt.Sprintf("%s %d", route.Operation.OperationID, resp.StatusCode)] = true
	s.mu.Unlock()
	return ""
}

// covered fails the test unless every "operationId status" in want was seen.
func (s *specCheck) covered(tb testing.TB, want ...string) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for _, w := range want {
		if !s.seen[w] {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		seen := make([]string, 0, len(s.seen))
		for k := range s.seen {
			seen = append(seen, k)
		}
		slices.Sort(seen)
		tb.Fatalf("exchanges not exercised: %v\nseen: %v", missing, seen)
	}
}

func TestOpenAPIServed(t *testing.T) {
	a := newAPI(t)
	resp, err := a.client.Get(a.url + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("GET /openapi.yaml = %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/yaml"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	if !bytes.Equal(body, web.OpenAPISpec()) {
		t.Error("served document differs from the embedded one")
	}
	if doc := loadSpec(t); doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
}

// TestOpenAPIContract drives every operation through its success and main
// error responses over a validating client: any request or response the
// contract does not describe fails the test.
func TestOpenAPIContract(t *testing.T) {
	a := newAPI(t)
	spec := validateAgainstSpec(t, a.client.Transport)
	a.client.Transport = spec
	jwks := func() *tokens.Verifier {
		r := a.do(t, "GET", "/.well-known/jwks.json", "", nil)
		v, err := tokens.NewVerifierFromJWKS(r.raw, "arbiter", time.Now)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}()

	// Operations.
	a.do(t, "GET", "/healthz", "", nil)
	a.do(t, "GET", "/readyz", "", nil)
	a.do(t, "GET", "/v1/ping", checkerKey, nil)
	a.do(t, "GET", "/v1/ping", "", nil)
	for _, path := range []string{"/openapi.yaml", "/metrics"} {
		resp, err := a.client.Get(a.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// A check, read, redeemed by token; the same client repeats it.
	held := a.do(t, "POST", "/v1/checks", checkerKey,
		map[string]string{"customer_id": "C-oa-1", "product": "credit_card", "agent_id": "agent-7"},
		"Idempotency-Key", "oa-1", "X-Request-ID", "contract-1")
	wantStatus(t, held, http.StatusCreated)
	if got, want := held.header.Get("X-Request-ID"), "contract-1"; got != want {
		t.Errorf("X-Request-ID = %q, want %q", got, want)
	}
	if _, err := jwks.Verify(held.str("token"), "card-service"); err != nil {
		t.Errorf("token does not verify with the JWKS: %v", err)
	}
	wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey,
		map[string]string{"customer_id": "C-oa-1", "product": "credit_card", "agent_id": "agent-7"},
		"Idempotency-Key", "oa-1"), http.StatusCreated)
	wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey,
		map[string]string{"customer_id": "C-oa-1", "product": "personal_loan"}, "Idempotency-Key", "oa-1"),
		http.StatusUnprocessableEntity, validation.ReasonIdempotencyKeyReused)
	wantStatus(t, a.check(t, loanKey, "C-oa-1", "personal_loan"), http.StatusConflict, validation.ReasonHoldExists)
	wantStatus(t, a.do(t, "GET", "/v1/checks/"+held.str("check_id"), checkerKey, nil), http.StatusOK)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-1", cardKey, nil), http.StatusOK)
	token := map[string]string{"token": held.str("token")}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, token), http.StatusForbidden, validation.ReasonTokenInvalid)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, token), http.StatusCreated)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, token), http.StatusOK)
	wantStatus(t, a.do(t, "GET", "/v1/checks/"+held.str("check_id"), checkerKey, nil), http.StatusOK)
	wantStatus(t, a.check(t, checkerKey, "C-oa-1", "personal_loan"), http.StatusConflict, validation.ReasonConflictingProduct)
	wantStatus(t, a.do(t, "DELETE", "/v1/checks/"+held.str("check_id"), checkerKey, nil), http.StatusConflict, validation.ReasonCheckNotHeld)

	// OTP: a wrong code, then the right one; a hold burnt by wrong codes.
	otpHeld := a.mustCheck(t, "C-oa-2", "personal_loan")
	wrong := map[string]string{"customer_id": "C-oa-2", "product": "personal_loan", "otp": otherCode(otpHeld.str("otp"))}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, wrong), http.StatusUnprocessableEntity, validation.ReasonOTPInvalid)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, wrong), http.StatusForbidden, validation.ReasonNotRedeemer)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-2", checkerKey, nil), http.StatusOK) // with a hold
	right := map[string]string{"customer_id": "C-oa-2", "product": "personal_loan", "otp": otpHeld.str("otp")}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, right), http.StatusCreated)
	burnt := a.mustCheck(t, "C-oa-3", "credit_card")
	bad := map[string]string{"customer_id": "C-oa-3", "product": "credit_card", "otp": otherCode(burnt.str("otp"))}
	for i := 0; i < validation.DefaultMaxOTPAttempts-1; i++ {
		wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, bad), http.StatusUnprocessableEntity, validation.ReasonOTPInvalid)
	}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, bad), http.StatusGone, validation.ReasonOTPLocked)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": burnt.str("token")}),
		http.StatusGone, validation.ReasonOTPLocked)

	// Cancel; release; import; audit.
	cancelled := a.mustCheck(t, "C-oa-4", "credit_card")
	wantStatus(t, a.do(t, "DELETE", "/v1/checks/"+cancelled.str("check_id"), checkerKey, nil), http.StatusNoContent)
	wantStatus(t, a.do(t, "GET", "/v1/checks/"+cancelled.str("check_id"), checkerKey, nil), http.StatusOK)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": cancelled.str("token")}),
		http.StatusGone, validation.ReasonHoldExpired)
	wantStatus(t, a.do(t, "GET", "/v1/checks/chk_aaaaaaaaaaaaaaaaaaaa_C-oa-4", checkerKey, nil), http.StatusNotFound, validation.ReasonCheckNotFound)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-oa-1/products/credit_card", cardKey, nil), http.StatusNoContent)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-oa-1/products/credit_card", cardKey, nil), http.StatusNotFound, validation.ReasonGrantNotFound)
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-oa-5/products/credit_card", adminKey,
		map[string]string{"granted_at": "2024-03-01T09:00:00Z"}), http.StatusCreated)
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-oa-5/products/personal_loan", adminKey, nil), http.StatusConflict, validation.ReasonConflictingProduct)
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-oa-6/products/personal_loan", adminKey, nil), http.StatusCreated)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-1/audit?limit=20", checkerKey, nil), http.StatusOK)

	// Eligibility (dry run) and blocks.
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-5/eligibility?product=personal_loan", checkerKey, nil), http.StatusOK)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-9/eligibility?product=credit_card", checkerKey, nil), http.StatusOK)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-9/eligibility", checkerKey, nil), http.StatusBadRequest, validation.ReasonInvalidRequest)
	a.mustCheck(t, "C-oa-9", "credit_card")
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-oa-9/block", adminKey,
		map[string]string{"reason": "suspected fraud", "until": "2099-01-01T00:00:00Z"}), http.StatusOK)
	wantStatus(t, a.check(t, checkerKey, "C-oa-9", "personal_loan"), http.StatusConflict, validation.ReasonCustomerBlocked)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-9", checkerKey, nil), http.StatusOK)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-oa-9/block", adminKey, nil), http.StatusNoContent)

	// The main refusals of the HTTP layer.
	wantStatus(t, a.do(t, "POST", "/v1/checks", "", map[string]string{"customer_id": "C-oa-7", "product": "credit_card"}),
		http.StatusUnauthorized, validation.ReasonUnauthorized)
	wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, map[string]string{"customer_id": "C-oa-7", "product": "mortgage"}),
		http.StatusBadRequest, validation.ReasonInvalidRequest)
	wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, `{"customer_id":"C-oa-7","product":"credit_card","x":1}`),
		http.StatusBadRequest, validation.ReasonInvalidRequest)
	wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, `{"customer_id":"C-oa-7","product":"credit_card","agent_id":"`+strings.Repeat("a", 64<<10)+`"}`),
		http.StatusRequestEntityTooLarge, "payload_too_large")
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-oa-7/products/credit_card", checkerKey, nil), http.StatusForbidden, validation.ReasonForbidden)
	wantStatus(t, a.do(t, "GET", "/v1/customers/C-oa-1/audit?limit=0", checkerKey, nil), http.StatusBadRequest, validation.ReasonInvalidRequest)
	wantStatus(t, a.do(t, "GET", "/v1/nothing-here", checkerKey, nil), http.StatusNotFound, validation.ReasonNotFound)

	// Redis down: readiness and the API say 503.
	a.redis.Kill()
	wantStatus(t, a.do(t, "GET", "/readyz", "", nil), http.StatusServiceUnavailable, validation.ReasonUnavailable)
	wantStatus(t, a.check(t, checkerKey, "C-oa-8", "credit_card"), http.StatusServiceUnavailable, validation.ReasonUnavailable)

	spec.covered(t,
		"healthz 200", "readyz 200", "readyz 503", "jwks 200", "openapi 200", "metrics 200", "ping 204", "ping 401",
		"createCheck 201", "createCheck 400", "createCheck 401", "createCheck 409", "createCheck 413", "createCheck 422", "createCheck 503",
		"getCheck 200", "getCheck 404",
		"cancelCheck 204", "cancelCheck 409",
		"redeem 200", "redeem 201", "redeem 403", "redeem 410", "redeem 422",
		"getCustomer 200", "getAudit 200", "getAudit 400",
		"releaseGrant 204", "releaseGrant 404",
		"importGrant 201", "importGrant 403", "importGrant 409",
		"getEligibility 200", "getEligibility 400", "blockCustomer 200", "unblockCustomer 204",
	)
}

// otherCode returns a six-digit code unlike code: each digit shifted by
// five, so it is none of the codes the skew window accepts but by chance.
func otherCode(code string) string {
	var b strings.Builder
	for _, c := range code {
		b.WriteByte(byte('0' + (c-'0'+5)%10))
	}
	return b.String()
}
