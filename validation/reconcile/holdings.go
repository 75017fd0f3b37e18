package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Holding is one product a product system says a customer holds.
type Holding struct {
	CustomerID string
	Product    string
	CheckID    string // arbiter's check the product was issued from; "" when issued outside arbiter
	IssuedAt   time.Time
}

// HoldingsPage is one answer of a holdings feed: holdings ordered by
// customer id, Next, the after of the next page ("" when done), and the
// feed's proof of the range the page covers (nil when the feed sends none).
type HoldingsPage struct {
	Holdings []Holding
	Next     string
	Proof    *Proof
}

// Proof is a feed's completeness proof of one page (docs/reconciliation.md "The
// completeness proof"): what the product system's own listing holds in the
// range the page covers, (after, Next], or (after, end) on the last page,
// counted apart from the page's rows. A page that lists anything else than
// its proof skipped, invented or repeated a customer.
type Proof struct {
	Customers int    // distinct customer ids in the range
	Holdings  int    // holdings in the range
	Digest    string // "sha256:" + hex SHA-256 of each distinct customer id + "\n", in order
}

// ProofOf returns the proof of holdings (ordered by customer id): what a
// page that lists exactly them must carry.
func ProofOf(holdings []Holding) Proof {
	h, p := sha256.New(), Proof{Holdings: len(holdings)}
	for i, x := range holdings {
		if i == 0 || x.CustomerID != holdings[i-1].CustomerID {
			h.Write([]byte(x.CustomerID + "\n"))
			p.Customers++
		}
	}
	p.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return p
}

// String words the proof for an error.
func (p Proof) String() string {
	return fmt.Sprintf("%d customers, %d holdings, %s", p.Customers, p.Holdings, p.Digest)
}

// Feed is a product system's holdings feed (package feed is the HTTP one).
type Feed interface {
	// Page returns up to limit holdings of customers with ids after after.
	Page(ctx context.Context, after string, limit int) (HoldingsPage, error)
}

// Source is a feed and the product it lists, as a Reconciler reads it.
type Source struct {
	Product string
	Name    string // shown in findings: "card-service"
	Feed    Feed
}
