package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
)

// The products of arbiter's default policy, and who redeems each.
const (
	CreditCard   = "credit_card"
	PersonalLoan = "personal_loan"
)

// Keys are the API keys the scenarios use; the zero value of a field means
// the demo key of embedded mode.
type Keys struct {
	Checker string // a checker (branch-portal)
	Card    string // card-service: checker and redeemer of credit_card
	Loan    string // loan-service: checker and redeemer of personal_loan
}

// DemoKeys are the keys `go run ./cmd/arbiter` prints in demo mode.
var DemoKeys = Keys{Checker: "demo-checker-key", Card: "demo-card-key", Loan: "demo-loan-key"}

// For returns the key of the product's own service, which both checks and redeems it.
func (k Keys) For(product string) string {
	if product == PersonalLoan {
		return k.Loan
	}
	return k.Card
}

// Client calls arbiter's API and records every request in a Recorder.
type Client struct {
	Base string // e.g. http://127.0.0.1:8080, no trailing slash
	Keys Keys
	HTTP *http.Client
	Rec  *Recorder
}

// NewClient returns a Client with a keep-alive pool sized for conns
// concurrent requests and a per-request timeout.
func NewClient(base string, keys Keys, conns int, timeout time.Duration, rec *Recorder) *Client {
	tr := &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true,
	}
	return &Client{Base: strings.TrimRight(base, "/"), Keys: keys, HTTP: &http.Client{Transport: tr, Timeout: timeout}, Rec: rec}
}

// CloseIdle closes idle keep-alive connections.
func (c *Client) CloseIdle() { c.HTTP.CloseIdleConnections() }

// CheckResponse is the 201 body of POST /v1/checks (the fields the scenarios use).
type CheckResponse struct {
	CheckID    string    `json:"check_id"`
	CustomerID string    `json:"customer_id"`
	Product    string    `json:"product"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	OTP        string    `json:"otp"`
	Token      string    `json:"token"`
}

// GrantResponse is the body of a successful redemption.
type GrantResponse struct {
	CheckID    string `json:"check_id"`
	CustomerID string `json:"customer_id"`
	Product    string `json:"product"`
	Fence      int64  `json:"fence"`
	RedeemedBy string `json:"redeemed_by"`
}

// CustomerResponse is the body of GET /v1/customers/{id}.
type CustomerResponse struct {
	CustomerID string `json:"customer_id"`
	Products   []struct {
		Product string `json:"product"`
		CheckID string `json:"check_id"`
	} `json:"products"`
	Hold *struct {
		CheckID string `json:"check_id"`
		Product string `json:"product"`
	} `json:"hold"`
}

// Result is one request's outcome: Status is 0 when Err is a transport
// error; OK says whether Status was one of the expected ones.
type Result struct {
	Status int
	OK     bool
	Err    error
}

// Do sends one request named name (the endpoint tag), decodes a 2xx JSON
// body into out (when not nil), and records the latency from the moment the
// request is sent until its body has been read.
func (c *Client) Do(ctx context.Context, name, method, path, key string, body, out any, expect ...int) Result {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Result{Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return Result{Err: err}
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.HTTP.Do(req)
	var data []byte
	if err == nil {
		data, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	d := time.Since(start)
	if err != nil {
		c.Rec.Record(name, d, 0, err, false)
		return Result{Err: err}
	}
	r := Result{Status: resp.StatusCode, OK: slices.Contains(expect, resp.StatusCode)}
	if r.OK && !isNil(out) && resp.StatusCode/100 == 2 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			r.OK, r.Err = false, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	c.Rec.Record(name, d, resp.StatusCode, nil, r.OK)
	return r
}

// Check creates a check (POST /v1/checks) with the product's own service key.
func (c *Client) Check(ctx context.Context, customer, product string, out *CheckResponse, expect ...int) Result {
	return c.Do(ctx, "check", http.MethodPost, "/v1/checks", c.Keys.For(product),
		map[string]string{"customer_id": customer, "product": product}, out, expect...)
}

// RedeemToken redeems an approval token with the product's service key.
func (c *Client) RedeemToken(ctx context.Context, product, token string, out *GrantResponse, expect ...int) Result {
	return c.Do(ctx, "redeem", http.MethodPost, "/v1/redemptions", c.Keys.For(product),
		map[string]string{"token": token}, out, expect...)
}

// RedeemOTP redeems the customer's hold with its one-time code.
func (c *Client) RedeemOTP(ctx context.Context, customer, product, otp string, out *GrantResponse, expect ...int) Result {
	return c.Do(ctx, "redeem_otp", http.MethodPost, "/v1/redemptions", c.Keys.For(product),
		map[string]string{"customer_id": customer, "product": product, "otp": otp}, out, expect...)
}

// Cancel cancels a check (DELETE /v1/checks/{id}) as the product's
// service, which placed it (Check): only the placer or a redeemer of the
// product may cancel a check.
func (c *Client) Cancel(ctx context.Context, product, checkID string, expect ...int) Result {
	return c.Do(ctx, "cancel", http.MethodDelete, "/v1/checks/"+checkID, c.Keys.For(product), nil, nil, expect...)
}

// GetCheck reads a check as a checker.
func (c *Client) GetCheck(ctx context.Context, checkID string, out any, expect ...int) Result {
	return c.Do(ctx, "get_check", http.MethodGet, "/v1/checks/"+checkID, c.Keys.Checker, nil, out, expect...)
}

// Customer reads what a customer holds.
func (c *Client) Customer(ctx context.Context, customer string, out *CustomerResponse, expect ...int) Result {
	return c.Do(ctx, "customer", http.MethodGet, "/v1/customers/"+customer, c.Keys.Checker, nil, out, expect...)
}

// isNil reports whether out is nil or a typed nil pointer (the wrappers pass
// their *T through any).
func isNil(out any) bool {
	if out == nil {
		return true
	}
	v := reflect.ValueOf(out)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
