package issuing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
)

// Report counts what one Reconcile did with the pending rows.
type Report struct {
	Issued   int // arbiter had granted: the product was issued here
	Released int // grants released at arbiter (closed products, failed issues)
	Dropped  int // arbiter never granted: the application was forgotten
	Left     int // arbiter could not be asked: retried next time
	Skipped  int // younger than minAge: possibly still in flight
}

// Reconcile settles every pending row at least minAge old against arbiter's
// ledger, so that no customer holds a grant at arbiter without the product
// here. For an unfinished issue it reads the customer at arbiter: if arbiter
// granted this product (to this service, from the pending check when it is
// known), the product is issued here (or, if that fails, the grant is
// released); otherwise the application is dropped, but only once no hold it
// could still redeem is live (its own hold is cancelled; see settleIssue).
// An unfinished release is released again. Rows arbiter cannot answer for
// stay pending. Run it before serving with minAge 0, then periodically with
// a minAge above the longest request.
func (s *Service) Reconcile(ctx context.Context, minAge time.Duration) (Report, error) {
	var r Report
	rows, err := s.Store.Pendings(ctx)
	if err != nil {
		return r, fmt.Errorf("reconcile: %w", err)
	}
	cutoff := s.now().Add(-minAge)
	for _, p := range rows {
		if p.CreatedAt.After(cutoff) {
			r.Skipped++
			continue
		}
		if p.Action == ActionRelease {
			if s.release(ctx, p) {
				r.Released++
			} else {
				r.Left++
			}
			continue
		}
		s.settleIssue(ctx, p, &r)
	}
	if r != (Report{}) {
		s.log().Info("reconciled pending work with arbiter", "issued", r.Issued, "released", r.Released,
			"dropped", r.Dropped, "left", r.Left, "skipped", r.Skipped)
	}
	return r, nil
}

func (s *Service) settleIssue(ctx context.Context, p Pending, r *Report) {
	cu, err := s.Arbiter.Customer(ctx, p.CustomerID)
	if err != nil {
		s.log().Warn("reconcile: arbiter not reachable; left pending", "customer", p.CustomerID, "err", err)
		r.Left++
		return
	}
	// The grant this application made: of this product, redeemed by this
	// service, and from the pending check when it is known (a product may
	// allow several grants, so look for that one).
	var (
		g  client.Grant
		ok bool
	)
	for _, x := range cu.Products {
		if x.Product == s.Product && x.RedeemedBy == s.ClientID && (p.CheckID == "" || x.CheckID == p.CheckID) {
			g, ok = x, true
			break
		}
	}
	if !ok {
		// No grant for this application. It may only be dropped once no
		// redemption of it can land any more — a request still in flight,
		// or a script Redis runs late — that is, once no hold it could
		// redeem is live. A hold of its own check is cancelled first (and
		// the row settled on the next pass, from what arbiter then says);
		// an OTP application's hold is unknown, so any live hold of the
		// product keeps the row until that hold ends.
		if h := cu.Hold; h != nil && h.Product == s.Product && (p.CheckID == "" || h.CheckID == p.CheckID) {
			if p.CheckID != "" {
				if err := s.Arbiter.Cancel(ctx, h.CheckID); err != nil {
					s.log().Warn("reconcile: hold of an unfinished application not cancelled yet", "check", h.CheckID, "err", err)
				}
			}
			r.Left++
			return
		}
		if err := s.Store.Done(ctx, p.ID); err != nil {
			r.Left++
			return
		}
		r.Dropped++
		return
	}
	if local, err := s.Store.Product(ctx, p.CustomerID); err == nil {
		if local.CheckID != g.CheckID {
			s.log().Error("reconcile: customer holds a product here from another check than arbiter's grant",
				"customer", p.CustomerID, "local_check", local.CheckID, "arbiter_check", g.CheckID)
		}
		_ = s.Store.Done(ctx, p.ID)
		r.Issued++
		return
	}
	p.Channel = ChannelRecovered
	_, _, err = s.issue(ctx, p, &g)
	var e *Error
	switch {
	case err == nil:
		s.log().Info("reconcile: issued a product arbiter had granted before a crash", "customer", p.CustomerID, "check", g.CheckID, "fence", g.Fence)
		r.Issued++
	case errors.As(err, &e) && e.Compensated:
		r.Released++
	default:
		r.Left++
	}
}

// HoldEnded settles at once, whatever their age, the unfinished
// applications of customerID from check checkID, as Reconcile would: it is
// called when arbiter announces that the check's hold expired or was
// cancelled, so no redemption of it can land any more and the pending row
// need not wait for the next pass. It goes through the same settlement as
// Reconcile (arbiter is read first: a grant found is issued, no grant and
// no live hold drops the row), so a repeated announcement, or one for a
// check this service never saw, changes nothing. Report.Left counts rows
// arbiter could not be asked about; they stay for Reconcile.
func (s *Service) HoldEnded(ctx context.Context, customerID, checkID string) (Report, error) {
	var r Report
	if checkID == "" {
		return r, nil
	}
	rows, err := s.Store.Pendings(ctx)
	if err != nil {
		return r, fmt.Errorf("hold ended %s: %w", checkID, err)
	}
	customerID = client.CanonicalCustomerID(customerID)
	for _, p := range rows {
		if p.Action == ActionIssue && p.CheckID == checkID && p.CustomerID == customerID {
			s.settleIssue(ctx, p, &r)
		}
	}
	if r != (Report{}) {
		s.log().Info("hold ended: settled its unfinished application", "customer", customerID, "check", checkID,
			"issued", r.Issued, "released", r.Released, "dropped", r.Dropped, "left", r.Left)
	}
	return r, nil
}
