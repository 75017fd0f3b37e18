package load

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ring is a bounded FIFO shared by soak iterations.
type ring[T any] struct {
	mu    sync.Mutex
	items []T
	max   int
}

func (r *ring[T]) push(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.items) >= r.max {
		r.items = r.items[1:]
	}
	r.items = append(r.items, v)
}

// pop removes and returns the oldest item that ok accepts (only the head is
// looked at, so the cost stays constant).
func (r *ring[T]) pop(ok func(T) bool) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero T
	if len(r.items) == 0 || !ok(r.items[0]) {
		return zero, false
	}
	v := r.items[0]
	r.items = r.items[1:]
	return v, true
}

// peek returns the newest item.
func (r *ring[T]) peek() (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero T
	if len(r.items) == 0 {
		return zero, false
	}
	return r.items[len(r.items)-1], true
}

type held struct {
	customer, product, checkID string
	expires                    time.Time
}

func other(product string) string {
	if product == CreditCard {
		return PersonalLoan
	}
	return CreditCard
}

// Soak is a long moderate mixed load for leak and latency-drift hunting. Of
// every 20 iterations: 7 check and redeem by token, 3 check and redeem by
// OTP, 3 check and cancel, 2 are refused for a conflicting grant, 2 place a
// hold and abandon it, 1 is refused by another product's live hold, 1 reads
// back an abandoned hold after its expiry and wants "expired", 1 reads a
// granted customer and wants exactly one product.
func Soak(ctx context.Context, c *Client, cfg Config) (Report, error) {
	cfg.defaults()
	granted := &ring[held]{max: 10000}
	abandoned := &ring[held]{max: 10000}
	var expired, grants atomic.Int64
	var mu sync.Mutex
	var violations []string
	cfg.ready()
	violate := func(s string) { mu.Lock(); violations = append(violations, s); mu.Unlock() }

	fresh := func(ctx context.Context, i int64) (held, bool) {
		h := held{customer: fmt.Sprintf("%s-s%d", cfg.Prefix, i), product: CreditCard}
		if i%2 == 1 {
			h.product = PersonalLoan
		}
		var ch CheckResponse
		if !c.Check(ctx, h.customer, h.product, &ch, http.StatusCreated).OK {
			return h, false
		}
		h.checkID, h.expires = ch.CheckID, ch.ExpiresAt
		return h, true
	}

	rep := run(ctx, "soak", c, cfg, func(ctx context.Context, i int64) {
		switch slot := i % 20; {
		case slot < 7: // check, redeem by token
			h := held{customer: fmt.Sprintf("%s-s%d", cfg.Prefix, i), product: []string{CreditCard, PersonalLoan}[i%2]}
			var ch CheckResponse
			if !c.Check(ctx, h.customer, h.product, &ch, http.StatusCreated).OK {
				return
			}
			if c.RedeemToken(ctx, h.product, ch.Token, nil, http.StatusCreated).OK {
				grants.Add(1)
				granted.push(h)
			}
		case slot < 10: // check, redeem by OTP
			h := held{customer: fmt.Sprintf("%s-s%d", cfg.Prefix, i), product: []string{CreditCard, PersonalLoan}[i%2]}
			var ch CheckResponse
			if !c.Check(ctx, h.customer, h.product, &ch, http.StatusCreated).OK {
				return
			}
			if c.RedeemOTP(ctx, h.customer, h.product, ch.OTP, nil, http.StatusCreated).OK {
				grants.Add(1)
				granted.push(h)
			}
		case slot < 13: // check, cancel
			if h, ok := fresh(ctx, i); ok {
				c.Cancel(ctx, h.product, h.checkID, http.StatusNoContent)
			}
		case slot < 15: // refused: the customer holds the other product
			if g, ok := granted.peek(); ok {
				c.Check(ctx, g.customer, other(g.product), nil, http.StatusConflict)
			}
		case slot < 17: // abandon a hold; it expires on its own
			if h, ok := fresh(ctx, i); ok {
				abandoned.push(h)
			}
		case slot == 17: // refused: another product's hold is live (or just expired: then held, and cancelled)
			if h, ok := abandoned.peek(); ok {
				var ch CheckResponse
				if r := c.Check(ctx, h.customer, other(h.product), &ch, http.StatusConflict, http.StatusCreated); r.Status == http.StatusCreated {
					c.Cancel(ctx, other(h.product), ch.CheckID, http.StatusNoContent)
				}
			}
		case slot == 18: // an abandoned hold past its expiry reads "expired"
			due := func(h held) bool { return time.Now().After(h.expires.Add(time.Second)) }
			if h, ok := abandoned.pop(due); ok {
				var got struct {
					Status string `json:"status"`
				}
				if c.GetCheck(ctx, h.checkID, &got, http.StatusOK).OK {
					if got.Status != "expired" {
						violate(fmt.Sprintf("check %s: status %q after its expiry, want expired", h.checkID, got.Status))
					}
					expired.Add(1)
				}
			}
		default: // a granted customer holds exactly one product
			if g, ok := granted.peek(); ok {
				var cr CustomerResponse
				if c.Customer(ctx, g.customer, &cr, http.StatusOK).OK && len(cr.Products) != 1 {
					violate(fmt.Sprintf("customer %s holds %d products, want 1", g.customer, len(cr.Products)))
				}
			}
		}
	})
	rep.Counters["grants"] = grants.Load()
	rep.Counters["expiries_verified"] = expired.Load()
	rep.Violations = append(rep.Violations, violations...)
	return rep, nil
}
