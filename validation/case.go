package validation

import "time"

// Case is an open double holding: the customer holds products that
// exclude each other, across product systems (or at arbiter); nothing is
// deleted, someone must contact the customer.
type Case struct {
	CustomerID string
	Products   []string
	Detail     string // plain words, ending "contact the customer"
	OpenedAt   time.Time
	RunID      string
}

// ReconcilerActor is the actor of the imports, releases and cases a
// reconciliation makes: the stores write it into the customer's audit trail.
const ReconcilerActor = "reconciler"
