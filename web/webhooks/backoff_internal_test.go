package webhooks

import (
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

func TestBackoff(t *testing.T) {
	s, err := New(Options{Queue: nopQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		attempt int
		max     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, 256 * time.Second},
		{10, 5 * time.Minute}, {100, 5 * time.Minute}, {1 << 30, 5 * time.Minute},
	} {
		for range 100 {
			if got := s.backoff(tc.attempt); got < tc.max/2 || got > tc.max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.attempt, got, tc.max/2, tc.max)
			}
		}
	}
}

// nopQueue stands for a queue the test never calls.
type nopQueue struct{ validation.Deliveries }
