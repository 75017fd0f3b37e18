// Package bureau is arbiter's client of a credit rating provider: a
// validation.RatingSource over HTTP (GET url → {"score": 0..1000}).
//
// It bounds every call by the configured timeout, collapses concurrent
// lookups of one customer into one call, and opens a circuit breaker after
// consecutive failures so that a dead bureau costs a check nothing but an
// immediate "unavailable" until the cooldown ends.
package bureau

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"

	"github.com/arbiter-bank/arbiter/validation"
)

// ErrUnavailable wraps every failure: timeout, transport error, a status
// other than 200, a malformed answer or an open breaker.
var ErrUnavailable = errors.New("bureau unavailable")

// Client is a validation.RatingSource. It is safe for concurrent use.
type Client struct {
	cfg     validation.RatingConfig
	http    *http.Client
	breaker *gobreaker.CircuitBreaker[int]
	group   singleflight.Group
}

var _ validation.RatingSource = (*Client)(nil)

// New returns a client for cfg (defaults applied). hc may be nil.
func New(cfg validation.RatingConfig, hc *http.Client) *Client {
	cfg = cfg.WithDefaults()
	if hc == nil {
		hc = &http.Client{}
	}
	c := &Client{cfg: cfg, http: hc}
	c.breaker = gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
		Name:        "bureau",
		MaxRequests: 1, // one probe when half-open
		Timeout:     cfg.Breaker.Cooldown,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= uint32(cfg.Breaker.Failures) },
	})
	return c
}

// State is the breaker's state: "closed", "open" or "half-open".
func (c *Client) State() string { return c.breaker.State().String() }

// Rating returns the customer's score. It returns within the configured
// timeout (or ctx's deadline, if sooner) whatever the bureau does.
func (c *Client) Rating(ctx context.Context, customerID string) (int, error) {
	ch := c.group.DoChan(customerID, func() (any, error) {
		return c.breaker.Execute(func() (int, error) { return c.fetch(customerID) })
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return 0, fmt.Errorf("%w: %v", ErrUnavailable, r.Err)
		}
		return r.Val.(int), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// fetch makes one call. Its context is its own timeout, not a caller's: the
// call is shared by every caller waiting on that customer.
func (c *Client) fetch(customerID string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	u := strings.ReplaceAll(c.cfg.URL, "{customer_id}", url.PathEscape(customerID))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var body struct {
		Score *int `json:"score"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&body); err != nil {
		return 0, fmt.Errorf("malformed answer: %w", err)
	}
	if body.Score == nil || *body.Score < 0 || *body.Score > 1000 {
		return 0, errors.New("answer has no score in 0..1000")
	}
	return *body.Score, nil
}
