// Package feed reads a product system's holdings feed over HTTP:
//
//	GET {url}?after={customer_id}&limit={n}   Authorization: Bearer {key}
//	→ {"holdings":[{"customer_id","product","check_id","issued_at"}], "next":"<customer_id or empty>",
//	   "proof":{"customers","holdings","digest"}}
//
// The proof (optional) is the feed's count and digest of the range the page
// covers; the reconciler compares it with the page (reconcile.ProofOf).
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
	"regexp"
	"strconv"
	"time"

	"github.com/arbiter-bank/arbiter/validation/reconcile"
)

// MaxHoldingBytes is what one holding may take on average: a page of
// limit holdings may be at most (limit+16) × MaxHoldingBytes bytes (4 MiB
// at the largest limit, 1000), and fails as soon as more arrives.
const MaxHoldingBytes = 4 << 10

// maxPageBytes bounds a page asked for limit holdings.
func maxPageBytes(limit int) int64 { return int64(limit+16) * MaxHoldingBytes }

// Client is one feed. It implements reconcile.Feed.
type Client struct {
	URL  string
	Key  string       // bearer key; "" sends no Authorization
	HTTP *http.Client // default http.DefaultClient (the reconciler bounds each page's context)
}

var _ reconcile.Feed = (*Client)(nil)

type holding struct {
	CustomerID string `json:"customer_id"`
	Product    string `json:"product"`
	CheckID    string `json:"check_id"`
	IssuedAt   string `json:"issued_at"`
}

// refuseRedirect makes the client answer a redirect itself, unfollowed: a
// redirect would carry the key to another host, or from https to http
// (around production mode's refusal of a key in clear text), and the data
// from there would be trusted as the feed's.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Page implements reconcile.Feed. It never follows a redirect: a 3xx is
// an error naming the status and the Location.
func (c *Client) Page(ctx context.Context, after string, limit int) (reconcile.HoldingsPage, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return reconcile.HoldingsPage{}, err
	}
	q := u.Query()
	q.Set("after", after)
	q.Set("limit", strconv.Itoa(limit))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return reconcile.HoldingsPage{}, err
	}
	req.Header.Set("Accept", "application/json")
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	hc := *cmp.Or(c.HTTP, http.DefaultClient) // a copy: the caller's client keeps its own policy
	hc.CheckRedirect = refuseRedirect
	resp, err := hc.Do(req)
	if err != nil {
		return reconcile.HoldingsPage{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if loc := resp.Header.Get("Location"); loc != "" {
			return reconcile.HoldingsPage{}, fmt.Errorf("status %s, a redirect to %s: refused (the feed's key and trust go to the configured URL only; configure the URL it redirects to)", resp.Status, loc)
		}
		return reconcile.HoldingsPage{}, fmt.Errorf("status %s", resp.Status)
	}
	return decodePage(&boundedReader{r: resp.Body, left: maxPageBytes(limit)}, limit)
}

// errPageTooLarge: the body went past maxPageBytes.
var errPageTooLarge = errors.New("page too large")

// boundedReader fails once more than left bytes arrive.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, errPageTooLarge
	}
	return n, err
}

// decodePage reads the page's document as it streams in, one holding at a
// time, so that a page too large (more holdings than limit, more bytes
// than they may take) fails before it is held whole. A member named twice
// is garbage (which one would count?).
func decodePage(r *boundedReader, limit int) (reconcile.HoldingsPage, error) {
	dec := json.NewDecoder(r)
	out := reconcile.HoldingsPage{}
	err := func() error {
		if err := delim(dec, '{'); err != nil {
			return err
		}
		seen := map[string]bool{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := t.(string)
			if seen[key] && (key == "holdings" || key == "next" || key == "proof") {
				return fmt.Errorf("member %q twice", key)
			}
			seen[key] = true
			switch key {
			case "holdings":
				out.Holdings, err = decodeHoldings(dec, limit)
			case "next":
				err = dec.Decode(&out.Next)
			case "proof":
				out.Proof, err = decodeProof(dec)
			default:
				err = dec.Decode(new(json.RawMessage)) // a member the interface does not name
			}
			if err != nil {
				return err
			}
		}
		if !seen["holdings"] {
			return errors.New(`no "holdings" array`)
		}
		return delim(dec, '}')
	}()
	switch {
	case errors.Is(err, errPageTooLarge):
		return reconcile.HoldingsPage{}, fmt.Errorf("garbage: the page is over %d bytes (%d holdings asked, at most %d bytes each on average)", maxPageBytes(limit), limit, MaxHoldingBytes)
	case err != nil:
		return reconcile.HoldingsPage{}, fmt.Errorf("garbage: %w", err)
	}
	return out, nil
}

// decodeHoldings reads the holdings array, failing at the first holding
// past limit.
func decodeHoldings(dec *json.Decoder, limit int) ([]reconcile.Holding, error) {
	if err := delim(dec, '['); err != nil {
		return nil, fmt.Errorf(`"holdings" is not an array: %w`, err)
	}
	out := []reconcile.Holding{}
	for dec.More() {
		if len(out) == limit {
			return nil, fmt.Errorf("more than the %d holdings asked", limit)
		}
		var h holding
		if err := dec.Decode(&h); err != nil {
			return nil, err
		}
		var at time.Time
		if h.IssuedAt != "" {
			var err error
			if at, err = time.Parse(time.RFC3339Nano, h.IssuedAt); err != nil {
				return nil, fmt.Errorf("customer %s: issued_at %q is not RFC 3339", h.CustomerID, h.IssuedAt)
			}
		}
		out = append(out, reconcile.Holding{CustomerID: h.CustomerID, Product: h.Product, CheckID: h.CheckID, IssuedAt: at})
	}
	return out, delim(dec, ']')
}

// proofDigest is how a proof's digest is written.
var proofDigest = regexp.MustCompile(`^sha256:[0-9a-fA-F]{64}$`)

// decodeProof reads the page's completeness proof: null or absent is
// none; one that is there must be whole, or the page is garbage.
func decodeProof(dec *json.Decoder) (*reconcile.Proof, error) {
	var p *struct {
		Customers *int   `json:"customers"`
		Holdings  *int   `json:"holdings"`
		Digest    string `json:"digest"`
	}
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	switch {
	case p == nil:
		return nil, nil
	case p.Customers == nil || p.Holdings == nil || *p.Customers < 0 || *p.Holdings < *p.Customers:
		return nil, errors.New(`proof: "customers" and "holdings" must be counts, holdings at least customers`)
	case !proofDigest.MatchString(p.Digest):
		return nil, fmt.Errorf(`proof: digest %q is not "sha256:" and 64 hex digits`, p.Digest)
	}
	return &reconcile.Proof{Customers: *p.Customers, Holdings: *p.Holdings, Digest: p.Digest}, nil
}

// delim reads the next token and fails unless it is d.
func delim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("%v where %q belongs", t, d)
	}
	return nil
}
