package peer

import (
	"context"
	"errors"
	"testing"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The peer must implement the same policy as arbiter, or the benchmark
// compares unequal things.
func TestPeerEnforcesExclusivity(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	s := New(srv.Client(t))
	ctx := context.Background()

	id, err := s.Check(ctx, "c1", "credit_card")
	if err != nil {
		t.Fatalf("first check: %v", err)
	}
	t.Run("refuses a competing check while held", func(t *testing.T) {
		if _, err := s.Check(ctx, "c1", "personal_loan"); !errors.Is(err, ErrRefused) {
			t.Fatalf("check = %v, want ErrRefused", err)
		}
	})
	t.Run("redeems only the live hold", func(t *testing.T) {
		if err := s.Redeem(ctx, "c1", "chk_other"); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("redeem other = %v, want ErrNotHeld", err)
		}
		if err := s.Redeem(ctx, "c1", id); err != nil {
			t.Fatalf("redeem: %v", err)
		}
	})
	t.Run("refuses the conflicting product after the grant", func(t *testing.T) {
		if _, err := s.Check(ctx, "c1", "personal_loan"); !errors.Is(err, ErrRefused) {
			t.Fatalf("check = %v, want ErrRefused", err)
		}
		if _, err := s.Check(ctx, "c1", "credit_card"); !errors.Is(err, ErrRefused) {
			t.Fatalf("second card = %v, want ErrRefused", err)
		}
	})
}
