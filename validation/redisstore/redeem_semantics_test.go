package redisstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// The credentials and callers of TestContractRedemptionSemantics: a
// redemption names its check with the approval token or with an OTP (the
// right one: valid for the live hold, or the one that redeemed the check;
// or another one), and comes from the client that redeemed the check (or,
// for a live hold, the first redeemer) or from another redeemer of the
// product.
var (
	credentials = []string{"token", "otp", "other otp"}
	callers     = []string{"redeemer", "another redeemer"}
)

// redemptionSemantics is docs/api.md's table "Redemption: what each attempt gets"
// (state of the check × credential × caller → answer): "201" grants, "200"
// replays the grant, anything else is the refusal's reason. The columns
// follow credentials × callers.
var redemptionSemantics = []struct {
	state string
	want  [6]string
}{
	{"held", [6]string{"201", "201", "201", "201", "otp_invalid", "otp_invalid"}},
	{"redeemed by otp", [6]string{"200", "already_redeemed", "200", "already_redeemed", "otp_invalid", "already_redeemed"}},
	{"redeemed by token", [6]string{"200", "already_redeemed", "otp_invalid", "already_redeemed", "otp_invalid", "already_redeemed"}},
	{"released", [6]string{"grant_released", "grant_released", "grant_released", "grant_released", "grant_released", "grant_released"}},
	{"cancelled", [6]string{"hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired"}},
	{"expired", [6]string{"hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired"}},
	{"otp locked", [6]string{"otp_locked", "otp_locked", "otp_locked", "otp_locked", "otp_locked", "otp_locked"}},
	{"unknown", [6]string{"hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired", "hold_expired"}},
}

// cell is one customer brought into a state, ready for one redemption.
type cell struct {
	customer string
	check    validation.Check
	code     string // the right code: the one that redeemed, or valid now
	wantOut  string
	cred     string
	caller   string
}

// TestContractRedemptionSemantics tests every cell of the redemption table:
// a fresh customer is brought into the state, one redemption is made, and
// its answer is compared; a refusal must leave the ledger as it was.
func TestContractRedemptionSemantics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := b.store
		var cells []*cell
		for si, row := range redemptionSemantics {
			for ci, cred := range credentials {
				for ki, caller := range callers {
					cells = append(cells, &cell{
						customer: fmt.Sprintf("R-%d-%d-%d", si, ci, ki),
						wantOut:  row.want[ci*len(callers)+ki], cred: cred, caller: caller,
					})
				}
			}
		}
		// The expiring customers go first and share one wait for the clock
		// (miniredis's fast-forward ages every key), then the others.
		stateOf := func(i int) string { return redemptionSemantics[i/(len(credentials)*len(callers))].state }
		for _, expiring := range []bool{true, false} {
			for i, c := range cells {
				if (stateOf(i) == "expired") == expiring {
					setUp(t, b, stateOf(i), c)
				}
			}
			for i, c := range cells {
				if expiring && stateOf(i) == "expired" {
					b.expire(t, c.customer)
				}
			}
		}
		for i, c := range cells {
			state := stateOf(i)
			t.Run(state+"/"+c.cred+"/"+c.caller, func(t *testing.T) {
				redeemCell(t, s, state, c)
			})
		}
	})
}

// setUp brings c's customer into state, on the credit card.
func setUp(tb testing.TB, b backend, state string, c *cell) {
	tb.Helper()
	s, ctx, now := b.store, context.Background(), time.Now()
	if state == "unknown" {
		c.check = validation.Check{ID: mustID(tb, c.customer), CustomerID: c.customer, Product: "credit_card"}
		c.code = "123456"
		return
	}
	req := holdRequest(tb, c.customer, "credit_card", now)
	if state == "expired" {
		req.Rule.HoldTTL = time.Second
	}
	ch, _, err := s.Hold(ctx, req)
	if err != nil {
		tb.Fatalf("hold %s: %v", c.customer, err)
	}
	c.check = ch
	if c.code, _, err = tokens.OTPCode(ch.Secret, now); err != nil {
		tb.Fatal(err)
	}
	switch state {
	case "redeemed by otp", "released":
		_, _, err = redeemOTP(s, c.customer, "credit_card", c.code, "card-service", now)
	case "redeemed by token":
		_, _, err = redeemToken(s, ch, "card-service", now)
	case "cancelled":
		_, err = s.Cancel(ctx, validation.CancelRequest{CustomerID: c.customer, CheckID: ch.ID, Actor: "branch-portal", Now: now})
	case "otp locked":
		for range 5 {
			_, _, err = redeemOTP(s, c.customer, "credit_card", wrongCode(tb, ch.Secret, now), "card-service", now)
		}
		if validation.ReasonOf(err) == validation.ReasonOTPLocked {
			err = nil
		}
	}
	if err != nil {
		tb.Fatalf("bring %s into state %q: %v", c.customer, state, err)
	}
	if state == "released" {
		if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: c.customer, Product: "credit_card", CheckID: ch.ID, Actor: "card-service", Now: now}); err != nil {
			tb.Fatalf("release %s: %v", c.customer, err)
		}
	}
}

// redeemCell makes c's one redemption and checks its answer.
func redeemCell(t *testing.T, s *redisstore.Store, state string, c *cell) {
	now := time.Now()
	actor := "card-service"
	if c.caller == "another redeemer" {
		actor = "card-service-2"
	}
	before := grantsOf(t, s, c.customer)
	var (
		g        validation.Grant
		replayed bool
		err      error
	)
	switch c.cred {
	case "token":
		g, replayed, err = redeemToken(s, c.check, actor, now)
	case "otp":
		g, replayed, err = redeemOTP(s, c.customer, "credit_card", c.code, actor, now)
	case "other otp":
		code := wrongCode(t, c.check.Secret, now)
		if c.check.Secret == nil {
			code = "654321"
		}
		g, replayed, err = redeemOTP(s, c.customer, "credit_card", code, actor, now)
	}
	switch c.wantOut {
	case "201", "200":
		if err != nil {
			t.Fatalf("redeem = %v, want %s", err, c.wantOut)
		}
		if got, want := replayed, c.wantOut == "200"; got != want {
			t.Fatalf("replayed = %v, want %v", got, want)
		}
		if g.CheckID != c.check.ID || g.Product != "credit_card" {
			t.Fatalf("grant = %+v, want check %s", g, c.check.ID)
		}
		if after := grantsOf(t, s, c.customer); !slices.Contains(after, c.check.ID) {
			t.Fatalf("ledger = %v after a %s, want grant %s in it", after, c.wantOut, c.check.ID)
		}
	default:
		e := wantReason(t, err, validation.Reason(c.wantOut))
		if e.Reason == validation.ReasonOTPInvalid {
			if live := state == "held"; (e.AttemptsLeft != nil) != live {
				t.Fatalf("attempts_left = %v, want it only while a hold lives", e.AttemptsLeft)
			}
		}
		if after := grantsOf(t, s, c.customer); !slices.Equal(after, before) {
			t.Fatalf("ledger = %v after a refusal, was %v", after, before)
		}
	}
}

// grantsOf lists the check ids of the customer's grants.
func grantsOf(tb testing.TB, s *redisstore.Store, customer string) []string {
	tb.Helper()
	cu, err := s.Customer(context.Background(), customer, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	ids := []string{}
	for _, g := range cu.Grants {
		ids = append(ids, g.CheckID)
	}
	return ids
}
