package redisstore_test

import (
	"testing"

	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// TestContractCaseHoldsTheLine: while a customer's reconciliation case is
// open, a check of a product of the case, or of one that excludes one of
// them, is refused case_open, and so is the redemption of a hold placed
// before the case opened (the hold is kept); resolving the case lifts it.
func TestContractCaseHoldsTheLine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.CaseHoldsTheLine(t, b.shared()) })
}
