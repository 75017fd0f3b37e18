// Package feed reads a product system's holdings feed over HTTP:
//
//	GET {url}?after={customer_id}&limit={n}   Authorization: Bearer {key}
//	→ {"holdings":[{"customer_id","product","check_id","issued_at"}], "next":"<customer_id or empty>"}
//
// A redirect is never followed (the source fails, naming it). Members the
// interface does not name are ignored (a product system may
// say more); a body that is not that document is an error, so the
// reconciler treats the source as failed and releases nothing of it.
package feed

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// MaxPageBytes bounds one page's body.
const MaxPageBytes = 32 << 20

// Client is one feed. It implements validation.Feed.
type Client struct {
	URL  string
	Key  string       // bearer key; "" sends no Authorization
	HTTP *http.Client // default http.DefaultClient (the reconciler bounds each page's context)
}

var _ validation.Feed = (*Client)(nil)

type page struct {
	Holdings *[]struct {
		CustomerID string `json:"customer_id"`
		Product    string `json:"product"`
		CheckID    string `json:"check_id"`
		IssuedAt   string `json:"issued_at"`
	} `json:"holdings"`
	Next string `json:"next"`
}

// refuseRedirect makes the client answer a redirect itself, unfollowed: a
// redirect would carry the key to another host, or from https to http
// (around production mode's refusal of a key in clear text), and the data
// from there would be trusted as the feed's.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Page implements validation.Feed. It never follows a redirect: a 3xx is
// an error naming the status and the Location.
func (c *Client) Page(ctx context.Context, after string, limit int) (validation.HoldingsPage, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return validation.HoldingsPage{}, err
	}
	q := u.Query()
	q.Set("after", after)
	q.Set("limit", strconv.Itoa(limit))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return validation.HoldingsPage{}, err
	}
	req.Header.Set("Accept", "application/json")
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	hc := *cmp.Or(c.HTTP, http.DefaultClient) // a copy: the caller's client keeps its own policy
	hc.CheckRedirect = refuseRedirect
	resp, err := hc.Do(req)
	if err != nil {
		return validation.HoldingsPage{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if loc := resp.Header.Get("Location"); loc != "" {
			return validation.HoldingsPage{}, fmt.Errorf("status %s, a redirect to %s: refused (the feed's key and trust go to the configured URL only; configure the URL it redirects to)", resp.Status, loc)
		}
		return validation.HoldingsPage{}, fmt.Errorf("status %s", resp.Status)
	}
	var p page
	dec := json.NewDecoder(io.LimitReader(resp.Body, MaxPageBytes))
	if err := dec.Decode(&p); err != nil {
		return validation.HoldingsPage{}, fmt.Errorf("garbage: %w", err)
	}
	if p.Holdings == nil {
		return validation.HoldingsPage{}, errors.New(`garbage: no "holdings" array`)
	}
	out := validation.HoldingsPage{Next: p.Next, Holdings: make([]validation.Holding, 0, len(*p.Holdings))}
	for _, h := range *p.Holdings {
		var at time.Time
		if h.IssuedAt != "" {
			if at, err = time.Parse(time.RFC3339Nano, h.IssuedAt); err != nil {
				return validation.HoldingsPage{}, fmt.Errorf("garbage: customer %s: issued_at %q is not RFC 3339", h.CustomerID, h.IssuedAt)
			}
		}
		out.Holdings = append(out.Holdings, validation.Holding{CustomerID: h.CustomerID, Product: h.Product, CheckID: h.CheckID, IssuedAt: at})
	}
	return out, nil
}
