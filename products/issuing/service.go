package issuing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
)

// Fault points, for tests that kill or break the service at the worst
// moment. See Service.Fault.
const (
	FaultAfterRedeem = "after-redeem" // arbiter granted; nothing is written locally yet
	FaultInsert      = "insert"       // a non-nil error here fails the local insert
)

// Service issues one product (Product) on behalf of one arbiter client
// (ClientID). Arbiter and Store are required; the other fields have
// defaults. It is safe for concurrent use.
type Service struct {
	Product  string // the arbiter product this service issues, e.g. "credit_card"
	ClientID string // this service's client id at arbiter
	Arbiter  Arbiter
	Store    Store
	// Underwrite decides an online application after arbiter's check; a
	// non-nil error declines it (the hold is cancelled). nil approves all.
	Underwrite func(ctx context.Context, customerID string) error
	Log        *slog.Logger     // default slog.Default()
	Now        func() time.Time // default time.Now
	// Fault is a test hook called at the fault points; nil in production.
	Fault func(point string) error
}

// Application is a request for the product: CustomerID and exactly one of
// Token (an approval token) and OTP (the code arbiter gave the customer).
type Application struct {
	CustomerID string `json:"customer_id"`
	Token      string `json:"token,omitempty"`
	OTP        string `json:"otp,omitempty"`
	// Caller is the id of the authenticated client that sent the
	// application ("" when the service's API is open). It is logged with
	// every OTP attempt, since wrong codes burn the hold and then block the
	// customer's redemptions. It is never read from the request body.
	Caller string `json:"-"`
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) fault(point string) error {
	if s.Fault == nil {
		return nil
	}
	return s.Fault(point)
}

// Apply issues the product for an application and returns it; replayed is
// true when the same application (same check) had been issued already. Its
// errors are *Error: token_invalid and stale_fence before arbiter is called,
// arbiter's refusals, issue_failed with Compensated when the local write
// failed after arbiter granted, and arbiter_unavailable with Pending when
// arbiter's answer was lost (Reconcile settles it).
func (s *Service) Apply(ctx context.Context, a Application) (Product, bool, error) {
	a.CustomerID = client.CanonicalCustomerID(a.CustomerID) // arbiter's form: tokens carry it
	switch {
	case a.CustomerID == "":
		return Product{}, false, &Error{Reason: ReasonInvalidRequest, Detail: "customer_id is required"}
	case (a.Token == "") == (a.OTP == ""):
		return Product{}, false, &Error{Reason: ReasonInvalidRequest, Detail: `send {"customer_id","token"} or {"customer_id","otp"}`}
	case a.OTP != "":
		return s.applyOTP(ctx, a)
	}
	return s.applyToken(ctx, a, ChannelToken)
}

func (s *Service) applyToken(ctx context.Context, a Application, ch Channel) (Product, bool, error) {
	claims, err := s.Arbiter.VerifyToken(ctx, a.Token)
	if errors.Is(err, client.ErrTokenInvalid) {
		return Product{}, false, &Error{Reason: ReasonTokenInvalid, Detail: "the approval token is forged, expired or not for this service", Err: err}
	}
	if err != nil {
		return Product{}, false, &Error{Reason: ReasonArbiterUnavailable, Detail: "arbiter's signing keys could not be fetched", Err: err}
	}
	if claims.CustomerID != a.CustomerID || claims.Product != s.Product {
		return Product{}, false, &Error{Reason: ReasonTokenInvalid, Detail: fmt.Sprintf("the token approves %s for another customer or product", claims.Product)}
	}
	if p, err := s.Store.ProductByCheck(ctx, claims.CheckID); err == nil {
		return p, true, nil
	}
	p, err := s.Store.Begin(ctx, Pending{Action: ActionIssue, CustomerID: a.CustomerID, CheckID: claims.CheckID, Fence: claims.Fence, Channel: ch, CreatedAt: s.now()})
	if errors.Is(err, ErrStaleFence) {
		return Product{}, false, &Error{Reason: ReasonStaleFence, Detail: "a newer approval for this customer has been seen; this token is stale", Err: err}
	}
	if e := retiredError(err); e != nil {
		return Product{}, false, e
	}
	if err != nil {
		return Product{}, false, err
	}
	return s.redeem(ctx, p, client.Redemption{Token: a.Token})
}

func (s *Service) applyOTP(ctx context.Context, a Application) (Product, bool, error) {
	p, err := s.Store.Begin(ctx, Pending{Action: ActionIssue, CustomerID: a.CustomerID, Channel: ChannelOTP, CreatedAt: s.now()})
	if err != nil {
		return Product{}, false, err
	}
	prod, replayed, err := s.redeem(ctx, p, client.Redemption{CustomerID: a.CustomerID, Product: s.Product, OTP: a.OTP})
	outcome := "issued"
	if err != nil {
		outcome = ReasonOf(err)
	}
	// arbiter's redemption API has no field for whom a product service acts,
	// so the attribution of each code tried is this line (never the code).
	s.log().InfoContext(ctx, "otp attempt", "customer", a.CustomerID, "caller", a.Caller, "outcome", outcome)
	return prod, replayed, err
}

// redeem redeems with arbiter for pending row p, then issues.
func (s *Service) redeem(ctx context.Context, p Pending, r client.Redemption) (Product, bool, error) {
	g, err := s.Arbiter.Redeem(ctx, r)
	if err != nil {
		if !refused(err) {
			s.log().Warn("redeem outcome unknown; left pending for reconciliation", "customer", p.CustomerID, "pending", p.ID, "err", err)
			e := fromArbiter(err, "arbiter did not answer the redemption; it will be settled by reconciliation")
			e.Pending = true
			return Product{}, false, e
		}
		// A refusal of a retry does not prove that no earlier try was
		// carried out: keep the row for reconciliation, which drops it
		// once arbiter shows no grant and no hold it could redeem.
		var ae *client.Error
		if !errors.As(err, &ae) || !ae.Retried {
			s.done(ctx, p.ID)
		}
		return Product{}, false, fromArbiter(err, "")
	}
	if err := s.fault(FaultAfterRedeem); err != nil {
		return Product{}, false, err
	}
	return s.issue(ctx, p, g)
}

// issue writes the product of grant g and clears pending row p; if the
// write fails it releases the grant at arbiter (compensation). A retired
// check (closed or compensated here) is never issued again, even when
// arbiter still shows its grant: its release is already pending work.
func (s *Service) issue(ctx context.Context, p Pending, g *client.Grant) (Product, bool, error) {
	prod := Product{CustomerID: g.CustomerID, Product: g.Product, CheckID: g.CheckID, Fence: g.Fence, IssuedAt: s.now(), Channel: p.Channel}
	err := s.fault(FaultInsert)
	if err == nil {
		got, replayed, ierr := s.Store.Issue(ctx, prod, p.ID)
		if ierr == nil {
			return got, replayed, nil
		}
		if e := retiredError(ierr); e != nil {
			s.done(ctx, p.ID)
			return Product{}, false, e
		}
		err = ierr
	}
	err = s.compensate(ctx, p, g, err)
	if errors.Is(err, errIssuedElsewhere) {
		if got, perr := s.Store.ProductByCheck(ctx, g.CheckID); perr == nil {
			return got, true, nil
		}
	}
	return Product{}, false, err
}

// errIssuedElsewhere: compensate found the product issued by another
// process; issue then answers with that product.
var errIssuedElsewhere = errors.New("issued by another process")

// retiredError is the refusal of a retired check, nil for other errors.
func retiredError(err error) *Error {
	switch {
	case errors.Is(err, ErrClosed):
		return &Error{Reason: ReasonApplicationClosed, Detail: "this application's product was issued and has been closed since; start a new application", Err: err}
	case errors.Is(err, ErrCompensated):
		return &Error{Reason: ReasonCompensated, Detail: "this application could not be issued and arbiter's grant was released; start a new application", Err: err}
	}
	return nil
}

// compensate retires grant g's check and releases the grant after the
// local write failed with cause. The retirement and the pending release
// are recorded first, in one transaction, so that neither a client's retry
// nor a crash can end with the product issued from a released grant.
func (s *Service) compensate(ctx context.Context, p Pending, g *client.Grant, cause error) error {
	ctx = context.WithoutCancel(ctx)
	reason := ReasonIssueFailed
	switch {
	case errors.Is(cause, ErrStaleFence):
		reason = ReasonStaleFence
	case errors.Is(cause, ErrAlreadyIssued):
		reason = ReasonAlreadyIssued
	}
	rel, err := s.Store.Compensate(ctx, Compensation{CheckID: g.CheckID, CustomerID: g.CustomerID, Product: g.Product,
		Fence: g.Fence, Reason: reason, At: s.now()}, p.ID)
	if errors.Is(err, ErrIssued) {
		// Another process on this database issued it meanwhile (it
		// reconciled the same pending row): the grant stays.
		s.done(ctx, p.ID)
		return errIssuedElsewhere
	}
	if err != nil {
		// Not even the compensation could be written: the pending issue row
		// stays, and reconciliation issues the product or releases the grant.
		s.log().Error("issuance failed and its compensation could not be recorded; left pending", "customer", g.CustomerID, "check", g.CheckID, "cause", cause, "err", err)
		return &Error{Reason: reason, Detail: "the product could not be issued; reconciliation will settle arbiter's grant", Pending: true, Err: cause}
	}
	if !s.release(ctx, rel) {
		s.log().Error("issuance failed and the grant could not be released yet; left pending", "customer", g.CustomerID, "check", g.CheckID, "cause", cause)
		return &Error{Reason: reason, Detail: "the product could not be issued; arbiter's grant will be released by reconciliation", Pending: true, Err: cause}
	}
	s.log().Warn("issuance failed after redemption; grant released at arbiter (compensated)", "customer", g.CustomerID, "check", g.CheckID, "fence", g.Fence, "cause", cause)
	return &Error{Reason: reason, Detail: "the product could not be issued here, so arbiter's grant was released again", Compensated: true, Err: cause}
}

// done deletes pending row id, logging (not failing) when it cannot:
// reconciliation finds the row again and settles it.
func (s *Service) done(ctx context.Context, id int64) {
	if err := s.Store.Done(context.WithoutCancel(ctx), id); err != nil {
		s.log().Warn("pending row not cleared", "pending", id, "err", err)
	}
}

// ApplyOnline runs the online channel for a customer: it asks arbiter for a
// check itself, underwrites, and redeems the approval token. Its errors are
// those of Apply, arbiter's check refusals (hold_exists, conflicting_product,
// already_holds_product) and declined.
func (s *Service) ApplyOnline(ctx context.Context, customerID string) (Product, bool, error) {
	customerID = client.CanonicalCustomerID(customerID)
	if customerID == "" {
		return Product{}, false, &Error{Reason: ReasonInvalidRequest, Detail: "customer_id is required"}
	}
	ch, err := s.Arbiter.Check(ctx, client.CheckRequest{CustomerID: customerID, Product: s.Product, AgentID: "online"})
	if err != nil {
		return Product{}, false, fromArbiter(err, "arbiter could not be asked for a check")
	}
	if s.Underwrite != nil {
		if err := s.Underwrite(ctx, customerID); err != nil {
			if cerr := s.Arbiter.Cancel(context.WithoutCancel(ctx), ch.ID); cerr != nil {
				s.log().Warn("declined application's hold not cancelled; it will expire", "check", ch.ID, "err", cerr)
			}
			return Product{}, false, &Error{Reason: ReasonDeclined, Detail: err.Error(), Err: err}
		}
	}
	return s.applyToken(ctx, Application{CustomerID: customerID, Token: ch.Token}, ChannelOnline)
}

// Closure is the outcome of Close.
type Closure struct {
	Product Product `json:"product"`
	// Released: arbiter's grant was released. When false the release is
	// pending and Reconcile retries it; until then arbiter still refuses
	// products that exclude this one.
	Released bool `json:"released"`
}

// Close closes the customer's product here, then releases the grant at
// arbiter. It returns *Error not_found if the customer holds no product.
func (s *Service) Close(ctx context.Context, customerID string) (Closure, error) {
	prod, p, err := s.Store.CloseProduct(ctx, customerID, s.now())
	if errors.Is(err, ErrNotFound) {
		return Closure{}, &Error{Reason: ReasonNotFound, Detail: "the customer holds no " + s.Product + " here", Err: err}
	}
	if err != nil {
		return Closure{}, err
	}
	return Closure{Product: prod, Released: s.release(ctx, p)}, nil
}

// release finishes a pending release; false if it must be retried.
func (s *Service) release(ctx context.Context, p Pending) bool {
	err := s.Arbiter.Release(ctx, p.CustomerID, s.Product, p.CheckID)
	if err != nil && !errors.Is(err, client.ErrGrantNotFound) {
		s.log().Warn("release at arbiter failed; left pending", "customer", p.CustomerID, "err", err)
		return false
	}
	s.done(ctx, p.ID)
	return true
}

// Holdings returns up to limit issued products after customer id after,
// with the page's completeness proof.
func (s *Service) Holdings(ctx context.Context, after string, limit int) (Holdings, error) {
	return s.Store.Holdings(ctx, after, limit)
}
