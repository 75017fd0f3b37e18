package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestCheckRunsAsFunction: on a Redis with functions a check, a refusal
// and both redemptions are one FCALL each of the loaded library, not an
// EVALSHA; a server that lost the library
// (FUNCTION FLUSH, a new empty master) still answers the check, by the
// script, and has the library again for the next one; a store that never
// ran Load finds out by itself; and miniredis, which has no functions,
// runs the script.
func TestCheckRunsAsFunction(t *testing.T) {
	ctx := context.Background()
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb, redisstore.Options{})
	if s.Functions() {
		t.Fatal("Functions() before Load")
	}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Functions() {
		t.Fatal("Functions() = false after Load on redis 7")
	}
	libs, err := rdb.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: "arbiter_*"}).Result()
	if err != nil || len(libs) != 1 || !strings.HasPrefix(libs[0].Functions[0].Name, libs[0].Name+"_") {
		t.Fatalf("FUNCTION LIST = %+v, %v; want one arbiter library", libs, err)
	}

	scriptCalls := func(name string, op func()) map[string]int64 {
		t.Helper()
		before := srv.CommandStats(t)
		op()
		after := srv.CommandStats(t)
		d := map[string]int64{}
		for _, c := range []string{"fcall", "evalsha", "eval"} {
			if n := after[c] - before[c]; n != 0 {
				d[c] = n
			}
		}
		return d
	}
	want := func(name string, got map[string]int64, fcall, evalsha int64) {
		t.Helper()
		if got["fcall"] != fcall || got["evalsha"] != evalsha || got["eval"] != 0 {
			t.Errorf("%s ran %v, want fcall %d and evalsha %d", name, got, fcall, evalsha)
		}
	}
	var card validation.Check
	want("a check", scriptCalls("check", func() { card = hold(t, s, "F-1", "credit_card", time.Now()) }), 1, 0)
	want("a refusal", scriptCalls("refusal", func() {
		_, _, err := s.Hold(ctx, holdRequest(t, "F-1", "personal_loan", time.Now()))
		wantReason(t, err, validation.ReasonHoldExists)
	}), 1, 0)
	want("a token redemption", scriptCalls("redeem", func() {
		if _, _, err := redeemToken(s, card, "card-service", time.Now()); err != nil {
			t.Fatal(err)
		}
	}), 1, 0)
	loan := hold(t, s, "F-6", "personal_loan", time.Now())
	code, _, err := tokens.OTPCode(loan.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want("an OTP redemption", scriptCalls("redeem_otp", func() {
		if _, _, err := redeemOTP(s, "F-6", "personal_loan", code, "loan-service", time.Now()); err != nil {
			t.Fatal(err)
		}
	}), 1, 0)

	if err := rdb.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The FCALL fails, the script answers, the library is loaded again
	// in the background.
	want("a check after FUNCTION FLUSH", scriptCalls("check", func() { hold(t, s, "F-2", "credit_card", time.Now()) }), 1, 1)
	waitLibrary(t, rdb)
	want("the check after the reload", scriptCalls("check", func() { hold(t, s, "F-3", "credit_card", time.Now()) }), 1, 0)

	// A store on a server that was flushed, never told to Load.
	if err := rdb.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	fresh := redisstore.New(rdb, redisstore.Options{})
	want("a first check without Load", scriptCalls("check", func() { hold(t, fresh, "F-4", "credit_card", time.Now()) }), 1, 1)
	waitLibrary(t, rdb)
	deadline := time.Now().Add(10 * time.Second)
	for !fresh.Functions() {
		if time.Now().After(deadline) {
			t.Fatal("the store did not load the library it found missing")
		}
		time.Sleep(5 * time.Millisecond)
	}

	m := redistest.MustStartMiniredis(t)
	mc := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = mc.Close() })
	ms := redisstore.New(mc, redisstore.Options{})
	if err := ms.Load(ctx); err != nil {
		t.Fatalf("Load on miniredis: %v", err)
	}
	if ms.Functions() {
		t.Fatal("Functions() = true on miniredis")
	}
	hold(t, ms, "F-5", "credit_card", time.Now())
}

// waitLibrary waits until the server has an arbiter library again (a store
// reloads it in the background after FCALL found it missing).
func waitLibrary(t *testing.T, rdb *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		libs, err := rdb.FunctionList(context.Background(), redis.FunctionListQuery{LibraryNamePattern: "arbiter_*"}).Result()
		if err == nil && len(libs) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no arbiter library 10 s after FCALL found it missing: %v, %v", libs, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
