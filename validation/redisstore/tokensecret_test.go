package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// TestContractTokenSecret: a check placed with a token hash is redeemed by
// token only with that hash, on the live hold and on a replay of its grant
// alike; an empty hash (a token whose signature the caller verified, which
// has no secret) redeems only a check that keeps none, as checks placed
// before they kept one (and migrated since).
func TestContractTokenSecret(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := b.store
		placeWith := func(customer string) (validation.Check, string) {
			t.Helper()
			req := holdRequest(t, customer, "credit_card", t0)
			req.Secret = []byte(fmt.Sprintf("%-20s", customer)) // a secret of its own
			req.TokenHash = validation.TokenHash(validation.TokenSecret(req.Secret))
			c, _, err := s.Hold(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			return c, req.TokenHash
		}
		redeemWith := func(c validation.Check, hash string, at time.Duration) (validation.Grant, bool, error) {
			return s.Redeem(context.Background(), validation.RedeemRequest{
				Rule: rule(nil, c.Product), CustomerID: c.CustomerID, CheckID: c.ID, TokenHash: hash,
				Actor: "card-service", Now: t0.Add(at), MaxAttempts: 5,
			})
		}
		c1, h1 := placeWith("C-1")
		c2, h2 := placeWith("C-2")
		if h1 == h2 {
			t.Fatal("two checks share a token hash")
		}
		wrong := []struct{ name, hash string }{
			{"another check's hash", h2}, {"no hash", ""}, {"a made-up hash", validation.TokenHash("guess")},
		}
		refused := func(t *testing.T, c validation.Check) {
			for _, w := range wrong {
				t.Run(w.name, func(t *testing.T) {
					_, _, err := redeemWith(c, w.hash, time.Minute)
					wantReason(t, err, validation.ReasonTokenInvalid)
				})
			}
		}
		t.Run("the live hold", func(t *testing.T) { refused(t, c1) })
		if _, replayed, err := redeemWith(c1, h1, time.Minute); err != nil || replayed {
			t.Fatalf("redeem with the check's hash = %v, replayed %v", err, replayed)
		}
		t.Run("a replay of the grant", func(t *testing.T) { refused(t, c1) })
		if _, replayed, err := redeemWith(c1, h1, 2*time.Minute); err != nil || !replayed {
			t.Fatalf("replay with the check's hash = %v, replayed %v", err, replayed)
		}
		t.Run("another customer's hash on its own check", func(t *testing.T) {
			_, _, err := redeemWith(c2, h1, time.Minute)
			wantReason(t, err, validation.ReasonTokenInvalid)
		})
		t.Run("an ended check", func(t *testing.T) {
			if _, err := s.Cancel(context.Background(), validation.CancelRequest{CustomerID: "C-2", CheckID: c2.ID, Actor: "ops", Now: t0.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			_, _, err := redeemWith(c2, "", 2*time.Minute)
			wantReason(t, err, validation.ReasonTokenInvalid)
			_, _, err = redeemWith(c2, h2, 2*time.Minute)
			wantReason(t, err, validation.ReasonHoldExpired)
		})
		c3 := hold(t, s, "C-3", "credit_card", t0)
		t.Run("a check keeping no hash takes an empty one only", func(t *testing.T) {
			c := c3
			_, _, err := redeemWith(c, h1, time.Minute)
			wantReason(t, err, validation.ReasonTokenInvalid)
			if _, _, err := redeemWith(c, "", time.Minute); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("a check written before checks had the field reads once migrated", func(t *testing.T) {
			// C-3's grant as an earlier version wrote it: the whole check
			// (its record), less its (empty) last field. The migration
			// makes it a grant the ledger keeps.
			ctx, key := context.Background(), "arb:{C-3}:grants"
			raw, err := b.rdb.HGet(ctx, key, c3.ID).Result()
			if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
				t.Skip("this backend's user runs scripts only")
			}
			if err == nil && !strings.HasPrefix(raw, "c2\x1f") { // a g1 grant: the whole check is its record
				raw, err = b.rdb.HGet(ctx, "arb:{C-3}:checks", c3.ID).Result()
			}
			// The token is the 17th field after the tag (fields are only
			// ever added after it).
			fields := strings.Split(raw, "\x1f")
			if err != nil || len(fields) < 18 || fields[17] != "" {
				t.Fatalf("grant = %q, %v; want an empty token", raw, err)
			}
			if err := b.rdb.HSet(ctx, key, c3.ID, strings.Join(fields[:17], "\x1f")).Err(); err != nil {
				t.Fatal(err)
			}
			if rep, err := s.Migrate(ctx, redisstore.MigrateOptions{}); err != nil || rep.Tokenless != 1 {
				t.Fatalf("migrate = %+v, %v; want the grant given its field", rep, err)
			}
			cu, err := s.Customer(ctx, "C-3", t0.Add(time.Hour))
			if err != nil || len(cu.Grants) != 1 || cu.Grants[0].RedeemedBy != "card-service" {
				t.Fatalf("customer = %+v, %v", cu, err)
			}
			_, _, err = s.Hold(ctx, holdRequest(t, "C-3", "credit_card", t0.Add(time.Hour)))
			wantReason(t, err, validation.ReasonAlreadyHoldsProduct)
			if _, replayed, err := redeemWith(c3, "", 2*time.Hour); err != nil || !replayed {
				t.Fatalf("replay = %v, replayed %v", err, replayed)
			}
		})
	})
}
