package issuing

import (
	"context"
	"errors"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
)

// Channel says how an application reached the service.
type Channel string

// The channels.
const (
	ChannelToken     Channel = "token"     // an approval token, e.g. from a partner's web app
	ChannelOTP       Channel = "otp"       // the code a customer read out at a branch
	ChannelOnline    Channel = "online"    // the service checked, underwrote and redeemed itself
	ChannelRecovered Channel = "recovered" // issued by Reconcile after a crash
	// ChannelLegacy marks a product issued outside arbiter (before it
	// existed, or by a back-office path); its CheckID is only a unique
	// placeholder and the holdings feed reports no check id for it.
	ChannelLegacy Channel = "legacy"
)

// Product is one product issued to a customer by this service.
type Product struct {
	CustomerID string    `json:"customer_id"`
	Product    string    `json:"product"`
	CheckID    string    `json:"check_id"`
	Fence      int64     `json:"fence"`
	IssuedAt   time.Time `json:"issued_at"`
	Channel    Channel   `json:"channel"`
}

// Action is what a pending row still has to bring about at arbiter.
type Action string

// The actions of pending rows.
const (
	ActionIssue   Action = "issue"   // a redemption whose product is not issued yet
	ActionRelease Action = "release" // a closed product whose grant is not released yet
)

// Pending is a durable note, written before calling arbiter, of work that
// must be finished (or undone) if the process dies halfway.
type Pending struct {
	ID         int64
	Action     Action
	CustomerID string
	CheckID    string // known for token and online applications
	Fence      int64  // known for token and online applications
	Channel    Channel
	CreatedAt  time.Time
}

// Store errors.
var (
	// ErrNotFound: the customer holds no product here.
	ErrNotFound = errors.New("issuing: not found")
	// ErrStaleFence: a higher fence is already recorded for the customer.
	ErrStaleFence = errors.New("issuing: stale fence")
	// ErrAlreadyIssued: the customer holds this product from another check.
	ErrAlreadyIssued = errors.New("issuing: already issued")
	// ErrClosed: the check's product was issued here and closed since; the
	// check is retired and never issues a product again.
	ErrClosed = errors.New("issuing: application closed")
	// ErrCompensated: the check's grant was released because the product
	// could not be issued; the check is retired like a closed one.
	ErrCompensated = errors.New("issuing: application compensated")
	// ErrIssued: the check's product is issued here already (by another
	// process on the same database), so its grant must not be released.
	ErrIssued = errors.New("issuing: issued already")
)

// Compensation records that the grant of CheckID was (or is being) released
// because its product could not be issued here, for Reason.
type Compensation struct {
	CheckID    string
	CustomerID string
	Product    string
	Fence      int64
	Reason     string // ReasonIssueFailed, ReasonStaleFence or ReasonAlreadyIssued
	At         time.Time
}

// Store is the service's own durable database. Implementations must make
// each method atomic.
//
// A check is retired once its product is closed (CloseProduct) or its grant
// compensated (Compensate); both record the pending release of its grant in
// the same transaction, and a retired check is refused by Begin and Issue.
// That is what makes "a product row exists only while its grant exists at
// arbiter" hold: arbiter releases a grant only at this service's request,
// which it makes only for retired checks, and a retired check never gets a
// row again, whatever a client retries or arbiter replays.
type Store interface {
	// Begin records p (its ID and CreatedAt are assigned) and raises the
	// customer's highest fence to p.Fence; it returns ErrStaleFence if a
	// higher fence is recorded already, and ErrClosed or ErrCompensated if
	// p.CheckID is retired, recording nothing.
	Begin(ctx context.Context, p Pending) (Pending, error)
	// Issue inserts the product and deletes pending row pendingID in one
	// transaction. If the customer already holds the product from the same
	// check it returns that product and true (a retry). It returns
	// ErrClosed or ErrCompensated if the check is retired, ErrStaleFence if
	// a higher fence is recorded for the customer, and ErrAlreadyIssued if
	// the customer holds the product from another check.
	Issue(ctx context.Context, p Product, pendingID int64) (Product, bool, error)
	// Compensate retires c.CheckID, deletes pending row pendingID and
	// records the pending release of the grant, in one transaction; it
	// returns that release row. If the check's product is issued (another
	// process issued it meanwhile) it changes nothing and returns ErrIssued.
	Compensate(ctx context.Context, c Compensation, pendingID int64) (Pending, error)
	// Done deletes a pending row; deleting a missing row is not an error.
	Done(ctx context.Context, pendingID int64) error
	// Pendings returns every pending row, oldest first.
	Pendings(ctx context.Context) ([]Pending, error)
	// Product returns the customer's product, or ErrNotFound.
	Product(ctx context.Context, customerID string) (Product, error)
	// ProductByCheck returns the product issued from a check, or ErrNotFound.
	ProductByCheck(ctx context.Context, checkID string) (Product, error)
	// CloseProduct moves the customer's product to the closed history and records
	// a pending release, in one transaction; ErrNotFound if there is none.
	CloseProduct(ctx context.Context, customerID string, at time.Time) (Product, Pending, error)
	// Holdings returns up to limit issued products with customer ids after
	// after, in customer id order, and the page's completeness proof, read
	// together (one snapshot).
	Holdings(ctx context.Context, after string, limit int) (Holdings, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
}

// Holdings is one page of the holdings feed (arbiter's reconciler reads
// it; docs/reconciliation.md fixes its contract).
type Holdings struct {
	Products []Product
	// Next is the page's last customer id, the after of the next page; ""
	// on the last page.
	Next string
	// Proof is the listing's count and digest of the range the page covers,
	// (after, Next], or every customer after after on the last page,
	// counted by its own query, not from Products: a paging mistake then
	// shows as a page that differs from its proof.
	Proof HoldingsProof
}

// HoldingsProof is docs/reconciliation.md's completeness proof of a range of the listing.
type HoldingsProof struct {
	Customers int    `json:"customers"` // distinct customer ids
	Holdings  int    `json:"holdings"`  // products
	Digest    string `json:"digest"`    // "sha256:" + hex SHA-256 of each distinct customer id + "\n", in order
}

// Arbiter is the part of arbiter's API a product service uses;
// *client.Client implements it.
type Arbiter interface {
	Check(ctx context.Context, r client.CheckRequest) (*client.Check, error)
	Cancel(ctx context.Context, checkID string) error
	Redeem(ctx context.Context, r client.Redemption) (*client.Grant, error)
	Release(ctx context.Context, customerID, product, checkID string) error
	Customer(ctx context.Context, customerID string) (*client.Customer, error)
	VerifyToken(ctx context.Context, token string) (client.Claims, error)
}

var _ Arbiter = (*client.Client)(nil)
