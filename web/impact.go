package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/validation"
)

// impactView is the policy impact report as the API shows it.
type impactView struct {
	PolicyVersion        string              `json:"policy_version"`
	At                   time.Time           `json:"at"`
	CustomersScanned     int                 `json:"customers_scanned"`
	CustomersInViolation int                 `json:"customers_in_violation"`
	Examples             []impactExampleView `json:"examples"`
	RecentChecks         recentChecksView    `json:"recent_checks"`
}

type impactExampleView struct {
	CustomerID string               `json:"customer_id"`
	Violations []grantViolationView `json:"violations"`
}

// grantViolationView is a violation (its fields, as in a refusal) and the
// grant that breaks the limit: the refusal's "this product".
type grantViolationView struct {
	Grant impactGrantView `json:"grant"`
	validation.Violation
}

type impactGrantView struct {
	Product   string    `json:"product"`
	CheckID   string    `json:"check_id"`
	GrantedAt time.Time `json:"granted_at"`
}

type recentChecksView struct {
	Since       time.Time                 `json:"since"`
	Total       int                       `json:"total"`
	WouldRefuse int                       `json:"would_refuse"`
	Share       float64                   `json:"share"`
	ByReason    map[validation.Reason]int `json:"by_reason"`
}

func viewImpact(imp validation.Impact) impactView {
	v := impactView{
		PolicyVersion: imp.PolicyVersion, At: imp.At.UTC(),
		CustomersScanned: imp.CustomersScanned, CustomersInViolation: imp.CustomersInViolation,
		Examples: make([]impactExampleView, 0, len(imp.Examples)),
		RecentChecks: recentChecksView{Since: imp.RecentChecks.Since.UTC(), Total: imp.RecentChecks.Total,
			WouldRefuse: imp.RecentChecks.WouldRefuse, Share: imp.RecentChecks.Share, ByReason: imp.RecentChecks.ByReason},
	}
	if v.RecentChecks.ByReason == nil {
		v.RecentChecks.ByReason = map[validation.Reason]int{}
	}
	for _, x := range imp.Examples {
		ex := impactExampleView{CustomerID: x.CustomerID, Violations: make([]grantViolationView, 0, len(x.Violations))}
		for _, gv := range x.Violations {
			ex.Violations = append(ex.Violations, grantViolationView{
				Grant:     impactGrantView{Product: gv.Grant.Product, CheckID: gv.Grant.CheckID, GrantedAt: gv.Grant.GrantedAt.UTC()},
				Violation: gv.Violation,
			})
		}
		v.Examples = append(v.Examples, ex)
	}
	return v
}

// policyTypes are the media types a candidate policy may be sent as (YAML;
// JSON is YAML too); none at all is accepted as well.
var policyTypes = map[string]bool{
	"application/yaml": true, "application/x-yaml": true, "text/yaml": true, "text/x-yaml": true,
	"text/plain": true, echo.MIMEApplicationJSON: true,
}

// handlePolicyImpact: POST /v1/policy/impact (admin) with a candidate
// policy file as the body (the format of ARBITER_POLICY) → 200 with what
// it would do to the ledger. Query: at (RFC 3339: the candidate's version
// in force then; default now), since (RFC 3339: the recent checks'
// start; default 30 days ago), examples (1..100; default 20).
func (s *Server) handlePolicyImpact() echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.ParsePolicy == nil {
			return validation.Errorf(validation.ReasonNotFound, "trying candidate policies is not configured")
		}
		opts, err := impactOptions(c.QueryParams())
		if err != nil {
			return err
		}
		body, err := readPolicyBody(c)
		if err != nil {
			return err
		}
		candidate, err := s.cfg.ParsePolicy(body)
		if err != nil {
			return &validation.Error{Reason: validation.ReasonInvalidRequest, Detail: "candidate " + err.Error()}
		}
		imp, err := s.cfg.Service.Impact(c.Request().Context(), actorOf(c), candidate, opts)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, viewImpact(imp))
	}
}

// readPolicyBody reads the candidate, at most MaxBodyBytes (beyond that
// 413 payload_too_large).
func readPolicyBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !policyTypes[mt] {
			return nil, validation.Errorf(validation.ReasonInvalidRequest, "Content-Type must be application/yaml, not %q", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, validation.Errorf(reasonPayloadTooLarge, "the body is larger than %d KiB; nothing was done", MaxBodyBytes>>10)
	case err != nil:
		return nil, validation.Errorf(validation.ReasonInvalidRequest, "the body could not be read")
	case len(body) == 0:
		return nil, validation.Errorf(validation.ReasonInvalidRequest, "the body is empty; send a candidate policy file (YAML)")
	}
	return body, nil
}

// impactOptions reads the query of a policy impact request.
func impactOptions(q url.Values) (validation.ImpactOptions, error) {
	var opts validation.ImpactOptions
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"at", &opts.At}, {"since", &opts.Since}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return opts, validation.Errorf(validation.ReasonInvalidRequest, "%s must be an RFC 3339 time, as in 2026-07-01T00:00:00Z", p.name)
			}
			*p.dst = t
		}
	}
	if v := q.Get("examples"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > validation.MaxImpactExamples {
			return opts, validation.Errorf(validation.ReasonInvalidRequest, "examples must be a whole number from 1 to %d", validation.MaxImpactExamples)
		}
		opts.Examples = n
	}
	return opts, nil
}
