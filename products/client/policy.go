package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ImpactOptions are the query of PolicyImpact; the zero value of each
// field means arbiter's default.
type ImpactOptions struct {
	At       time.Time // which of the candidate's versions applies (the one in force then); default now
	Since    time.Time // the recent checks are those since; default 30 days ago
	Examples int       // customers in violation to show, 1..100; default 20
}

// Impact is what a candidate policy would do to arbiter's ledger.
type Impact struct {
	PolicyVersion        string          `json:"policy_version"` // the candidate's version that was applied
	At                   time.Time       `json:"at"`
	CustomersScanned     int             `json:"customers_scanned"`
	CustomersInViolation int             `json:"customers_in_violation"` // whose grants already break a limit of the candidate
	Examples             []ImpactExample `json:"examples"`               // those of the smallest customer ids
	RecentChecks         RecentChecks    `json:"recent_checks"`
}

// ImpactExample is one customer the candidate would put in violation.
type ImpactExample struct {
	CustomerID string           `json:"customer_id"`
	Violations []GrantViolation `json:"violations"`
}

// GrantViolation is a limit of the candidate that one of the customer's
// grants breaks, worded as the candidate would word the refusal of that
// grant (its "this product").
type GrantViolation struct {
	Grant ImpactGrant `json:"grant"`
	Violation
}

// ImpactGrant names the grant of a GrantViolation.
type ImpactGrant struct {
	Product   string    `json:"product"`
	CheckID   string    `json:"check_id"`
	GrantedAt time.Time `json:"granted_at"`
}

// RecentChecks is what the candidate would have decided of the audit's
// recent checks.
type RecentChecks struct {
	Since       time.Time `json:"since"`
	Total       int       `json:"total"`
	WouldRefuse int       `json:"would_refuse"`
	Share       float64   `json:"share"` // WouldRefuse / Total; 0 when Total is 0
	// ByReason counts the refused checks by each rule they fail (a check
	// refused by two counts under both).
	ByReason map[Reason]int `json:"by_reason"`
}

// PolicyImpact asks arbiter what a candidate policy (a policy file, YAML,
// as arbiter reads its own) would do to the ledger now: the customers it
// would put in violation and the share of recent checks it would have
// refused. Admins only (ErrForbidden otherwise); a candidate that does not
// parse or validate is ErrInvalidRequest, its Detail naming the line. It
// reads only, so it is retried safely.
func (c *Client) PolicyImpact(ctx context.Context, candidate []byte, opts ImpactOptions) (*Impact, error) {
	q := url.Values{}
	if !opts.At.IsZero() {
		q.Set("at", opts.At.UTC().Format(time.RFC3339))
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.UTC().Format(time.RFC3339))
	}
	if opts.Examples != 0 {
		q.Set("examples", strconv.Itoa(opts.Examples))
	}
	path := "/v1/policy/impact"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if candidate == nil {
		candidate = []byte{}
	}
	var out Impact
	if _, err := c.do(ctx, request{op: "policy impact", method: http.MethodPost, path: path,
		body: candidate, contentType: "application/yaml", retry: retrySafe}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
