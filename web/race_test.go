package web_test

import "testing"

// TestRaceExclusivity is the invariant under contention: for each of 200
// customers, 16 goroutines race card and loan checks and redeem whatever
// they win, through the HTTP API on a real Redis. Every customer must end
// with exactly one product, and exactly one redemption per customer may
// have succeeded.
func TestRaceExclusivity(t *testing.T) {
	raceExclusivity(t, newAPI(t))
}
