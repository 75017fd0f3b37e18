package redisstore_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// commandsPerPath pins the Redis commands each script runs inside, per
// path (with compact grants; see wholeGrantPaths), as INFO commandstats counts them (EVALSHA itself excluded). A
// script that grows a command fails here deterministically, whatever the
// machine; timings stay out of CI (TestScriptCost measures them). When a
// change is meant, update the row and say why in the commit.
var commandsPerPath = map[string]map[string]float64{
	// Every check and redemption of a live hold reads the customer's
	// reconciliation case (one GET, see the prelude's "case" section).
	"check placed":             {"get": 2, "hmget": 2, "hgetall": 1, "set": 1, "hset": 1, "pexpire": 1},
	"check refused, live hold": {"get": 2, "hmget": 1, "hgetall": 1, "lpush": 1, "pexpire": 1},
	"check refused, grant":     {"get": 2, "hmget": 2, "hgetall": 1, "lpush": 1},          // the attempts list exists: no PEXPIRE
	"check placed, returning":  {"get": 2, "hmget": 2, "hgetall": 1, "set": 1, "hset": 1}, // meta's expiry renewed today: no PEXPIRE
	"check refused, case":      {"get": 2, "hmget": 2, "hgetall": 1, "lpush": 1, "pexpire": 1},
	"token redemption":         {"get": 2, "hgetall": 1, "del": 1, "hdel": 1, "hset": 2, "hlen": 1, "lpush": 1, "pexpire": 2}, // the grant and its record
	"token refused, case":      {"get": 2, "lpush": 1, "pexpire": 1},                                                          // the hold is kept
	"otp redemption":           {"get": 2, "hmget": 1, "hincrby": 1, "hgetall": 1, "del": 1, "hdel": 1, "hset": 2, "hlen": 1, "lpush": 1, "pexpire": 2},
	"otp refused, case":        {"get": 2, "lpush": 1}, // before the code: nothing counted
	"otp wrong code":           {"get": 2, "hmget": 1, "hincrby": 1, "hset": 1, "lpush": 1, "pexpire": 1},
	"token replay":             {"get": 1, "hmget": 1, "hget": 2}, // the grant, then its record
	"cancel":                   {"get": 1, "del": 1, "hdel": 1, "hset": 1, "hlen": 1, "pexpire": 2, "lpush": 1},
	"read after an expiry":     {"get": 1, "hmget": 2, "hget": 1, "hdel": 1, "hset": 1, "hlen": 1, "pexpire": 2, "lpush": 1}, // settle (meta, then the hold's shadow), then the read
	"read a live check":        {"get": 1},
	"read a customer":          {"get": 1, "hmget": 2, "hgetall": 1},
}

// wholeGrantPaths are the rows of commandsPerPath that differ without
// compact grants (the default): a redemption writes the whole check to
// the ledger and no record, as the previous release did, a replay finds
// its proof in the grant, and a read looks in the ledger before the
// records.
var wholeGrantPaths = map[string]map[string]float64{
	"token redemption":     {"get": 2, "hgetall": 1, "del": 1, "hdel": 1, "hset": 1, "lpush": 1, "pexpire": 1},
	"otp redemption":       {"get": 2, "hmget": 1, "hincrby": 1, "hgetall": 1, "del": 1, "hdel": 1, "hset": 1, "lpush": 1, "pexpire": 1},
	"token replay":         {"get": 1, "hmget": 1, "hget": 1},
	"read after an expiry": {"get": 1, "hmget": 2, "hget": 2, "hdel": 1, "hset": 1, "hlen": 1, "pexpire": 2, "lpush": 1}, // the ledger, then the record
}

func TestScriptCommands(t *testing.T) {
	t.Run("compact grants", func(t *testing.T) { testScriptCommands(t, true, commandsPerPath) })
	whole := maps.Clone(commandsPerPath)
	maps.Copy(whole, wholeGrantPaths)
	t.Run("whole grants", func(t *testing.T) { testScriptCommands(t, false, whole) })
}

func testScriptCommands(t *testing.T, compact bool, commandsPerPath map[string]map[string]float64) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := redisstore.New(rdb, redisstore.Options{CompactGrants: compact})
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	code, _, err := tokens.OTPCode([]byte("0123456789abcdefghij"), now)
	if err != nil {
		t.Fatal(err)
	}
	bad := wrongCode(t, []byte("0123456789abcdefghij"), now)
	var c validation.Check
	paths := []struct {
		name string
		op   func()
	}{
		{"check placed", func() { c = hold(t, s, "C-1", "credit_card", now) }},
		{"read a live check", func() {
			if _, err := s.Check(ctx, "C-1", c.ID, now); err != nil {
				t.Fatal(err)
			}
		}},
		{"check refused, live hold", func() {
			_, _, err := s.Hold(ctx, holdRequest(t, "C-1", "personal_loan", now))
			wantReason(t, err, validation.ReasonHoldExists)
		}},
		{"token redemption", func() {
			if _, _, err := redeemToken(s, c, "card-service", now); err != nil {
				t.Fatal(err)
			}
		}},
		{"token replay", func() {
			if _, replayed, err := redeemToken(s, c, "card-service", now); err != nil || !replayed {
				t.Fatal(replayed, err)
			}
		}},
		{"check refused, grant", func() {
			_, _, err := s.Hold(ctx, holdRequest(t, "C-1", "personal_loan", now))
			wantReason(t, err, validation.ReasonConflictingProduct)
		}},
		{"read a customer", func() {
			if _, err := s.Customer(ctx, "C-1", now); err != nil {
				t.Fatal(err)
			}
		}},
		{"otp wrong code", func() {
			hold(t, s, "C-2", "credit_card", now) // counted below apart
		}},
	}
	got := map[string]map[string]float64{}
	for _, p := range paths {
		got[p.name] = measureOp(t, rdb, 1, func(int) { p.op() }).commands
	}
	// The OTP paths need a hold first; measure only the redemption.
	got["otp wrong code"] = measureOp(t, rdb, 1, func(int) {
		_, _, err := redeemOTP(s, "C-2", "credit_card", bad, "card-service", now)
		wantReason(t, err, validation.ReasonOTPInvalid)
	}).commands
	got["otp redemption"] = measureOp(t, rdb, 1, func(int) {
		if _, _, err := redeemOTP(s, "C-2", "credit_card", code, "card-service", now); err != nil {
			t.Fatal(err)
		}
	}).commands
	d := hold(t, s, "C-3", "credit_card", now)
	got["cancel"] = measureOp(t, rdb, 1, func(int) { cancel(t, s, d, now) }).commands
	got["check placed, returning"] = measureOp(t, rdb, 1, func(int) { hold(t, s, "C-3", "credit_card", now) }).commands
	// Redis drops an expired hold on its own; the next script settles it.
	e := hold(t, s, "C-4", "credit_card", now)
	if err := rdb.Del(ctx, "arb:{C-4}:hold").Err(); err != nil {
		t.Fatal(err)
	}
	got["read after an expiry"] = measureOp(t, rdb, 1, func(int) {
		if got, err := s.Check(ctx, "C-4", e.ID, now); err != nil || got.Status != validation.StatusExpired {
			t.Fatal(got.Status, err)
		}
	}).commands
	// An open case refuses a check, then both redemptions of a hold placed
	// before it.
	f := hold(t, s, "C-5", "personal_loan", now)
	if err := s.OpenCase(ctx, validation.Case{CustomerID: "C-5", Products: []string{"credit_card"}, OpenedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.OpenCase(ctx, validation.Case{CustomerID: "C-6", Products: []string{"credit_card"}, OpenedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	got["check refused, case"] = measureOp(t, rdb, 1, func(int) {
		_, _, err := s.Hold(ctx, holdRequest(t, "C-6", "personal_loan", now))
		wantReason(t, err, validation.ReasonCaseOpen)
	}).commands
	got["token refused, case"] = measureOp(t, rdb, 1, func(int) {
		_, _, err := redeemToken(s, f, "loan-service", now)
		wantReason(t, err, validation.ReasonCaseOpen)
	}).commands
	got["otp refused, case"] = measureOp(t, rdb, 1, func(int) {
		_, _, err := redeemOTP(s, "C-5", "personal_loan", bad, "loan-service", now)
		wantReason(t, err, validation.ReasonCaseOpen)
	}).commands
	for name, want := range commandsPerPath {
		if !maps.Equal(got[name], want) {
			t.Errorf("%s runs %v inside its script, want %v", name, fmt.Sprint(got[name]), fmt.Sprint(want))
		}
	}
}
