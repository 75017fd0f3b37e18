package redisstore_test

import (
	"testing"

	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// TestContractRedemptionSemantics tests every cell of the redemption table:
// a fresh customer is brought into the state, one redemption is made, and
// its answer is compared; a refusal must leave the ledger as it was.
func TestContractRedemptionSemantics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.RedemptionSemantics(t, b.shared()) })
}
