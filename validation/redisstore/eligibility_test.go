package redisstore_test

import (
	"testing"

	"github.com/arbiter-bank/arbiter/validation/storetest"
)

func TestContractBlock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.Block(t, b.shared()) })
}

func TestContractBlockUntil(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.BlockUntil(t, b.shared()) })
}

func score(n int) *int { return &n }

func TestContractRating(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.Rating(t, b.shared()) })
}

// TestContractRatingBoundary: a score equal to min_rating passes, one
// below fails, in a check and in its dry run alike.
func TestContractRatingBoundary(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.RatingBoundary(t, b.shared()) })
}

// TestContractEligibilityMatchesCheck puts customers in every state and
// asserts that the dry run and then a real check both decide what the
// table says: the dry run alone, compared with a check that runs the same
// evaluate, would agree with it even where both are wrong. The dry run
// gets the bureau's fresh score; the check reads the score the dry run
// cached, as it would after a real dry run.
func TestContractEligibilityMatchesCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.EligibilityMatchesCheck(t, b.shared()) })
}
