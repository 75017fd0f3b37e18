package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestStoreFull runs the store on a real redis-server that reached a small
// maxmemory with noeviction (deploy/redis.conf's policy). Redis refuses a
// script at its first write that may add memory, unless the script has
// written already (it never stops a script half-way): so what adds data is
// refused with store_full and leaves nothing behind, while a redemption of
// a live hold, whose first write deletes the hold, goes through. An OTP
// attempt is counted before the code is verified, so a full Redis refuses
// right and wrong codes alike: it cannot be used to try codes uncounted.
func TestStoreFull(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb, redisstore.Options{})
	ctx, now := context.Background(), time.Now()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	card := hold(t, s, "C-1", "credit_card", now)
	loan := hold(t, s, "C-2", "personal_loan", now)
	// Replaying a check its client got already writes nothing.
	placed, retry := deliveredHold(t, s, "C-4", now)
	srv.FillToMaxmemory(t)

	t.Run("a check is refused and writes nothing", func(t *testing.T) {
		_, _, err := s.Hold(ctx, holdRequest(t, "C-3", "credit_card", now))
		wantReason(t, err, validation.ReasonStoreFull)
		if n, err := rdb.Exists(ctx, "arb:{C-3}:meta", "arb:{C-3}:hold", "arb:{C-3}:audit").Result(); err != nil || n != 0 {
			t.Fatalf("the refused check left %d keys (%v)", n, err)
		}
	})
	t.Run("a retry that writes nothing gets its check", func(t *testing.T) {
		// A function is refused whole on a full Redis; the check's FCALL
		// then falls back to the script, which writes nothing here.
		got, replayed, err := s.Hold(ctx, retry)
		if err != nil || !replayed || got.ID != placed.ID {
			t.Fatalf("replay under maxmemory = %s, %v, %v; want %s replayed", got.ID, replayed, err, placed.ID)
		}
	})
	t.Run("a redemption of a live hold succeeds", func(t *testing.T) {
		if _, _, err := redeemToken(s, card, "card-service", now); err != nil {
			t.Fatalf("redeem under maxmemory: %v", err)
		}
		cust, err := s.Customer(ctx, "C-1", now)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(cust.Grants), 1; got != want || cust.Hold != nil {
			t.Fatalf("C-1 after the redemption: %d grants, hold %v; want %d grant, no hold", got, cust.Hold, want)
		}
	})
	code, _, err := tokens.OTPCode(loan.Secret, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("an OTP attempt is refused whether the code is right or wrong", func(t *testing.T) {
		for _, c := range []string{code, wrongCode(t, loan.Secret, now)} {
			_, _, err := redeemOTP(s, "C-2", "personal_loan", c, "loan-service", now)
			wantReason(t, err, validation.ReasonStoreFull)
		}
		cust, err := s.Customer(ctx, "C-2", now)
		if err != nil {
			t.Fatal(err)
		}
		if cust.Hold == nil || len(cust.Grants) != 0 {
			t.Fatalf("C-2 after refused attempts: hold %v, grants %v; want the hold live, no grant", cust.Hold, cust.Grants)
		}
		// The live hold's wrong codes are counted in meta.
		if fails, err := rdb.HGet(ctx, "arb:{C-2}:meta", "fails").Result(); err != nil || fails != "0" {
			t.Fatalf("wrong-code count = %q (%v), want 0: a refused attempt changes nothing", fails, err)
		}
	})
	t.Run("with room again, the code redeems", func(t *testing.T) {
		if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := redeemOTP(s, "C-2", "personal_loan", code, "loan-service", now); err != nil {
			t.Fatalf("redeem after raising maxmemory: %v", err)
		}
		cust, err := s.Customer(ctx, "C-2", now)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(cust.Grants), 1; got != want {
			t.Fatalf("C-2 has %d grants, want %d", got, want)
		}
	})
}
