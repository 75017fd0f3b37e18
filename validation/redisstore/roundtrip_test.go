package redisstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// counter is a go-redis hook counting the commands sent, pipelines included.
type counter struct{ n atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRoundTrips proves the cost model: a check, a token redemption and an
// OTP redemption are each exactly one command (EVALSHA) once the scripts
// are loaded, counted twice: by the client and by the server; with the
// outbox on too (the record is written by the same script), and with the
// calls autopipelined.
func TestRoundTrips(t *testing.T) {
	for name, opts := range map[string]redisstore.Options{
		"no outbox": {}, "outbox": {OutboxCap: testOutboxCap}, "autopipelined": {AutoPipeline: true},
	} {
		t.Run(name, func(t *testing.T) { testRoundTrips(t, opts) })
	}
}

func testRoundTrips(t *testing.T, opts redisstore.Options) {
	s, measure := countedStore(t, opts)
	ctx := context.Background()

	var c validation.Check
	measure("check", func() { c = hold(t, s, "C-1", "credit_card", time.Now()) })
	measure("refused check", func() {
		_, _, err := s.Hold(ctx, holdRequest(t, "C-1", "personal_loan", time.Now()))
		wantReason(t, err, validation.ReasonHoldExists)
	})
	measure("token redemption", func() {
		if _, _, err := redeemToken(s, c, "card-service", time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	o := hold(t, s, "C-2", "credit_card", time.Now())
	code, _, err := tokens.OTPCode(o.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	measure("otp redemption", func() {
		if _, _, err := redeemOTP(s, "C-2", "credit_card", code, "card-service", time.Now()); err != nil {
			t.Fatal(err)
		}
	})
}

// countedStore is a Store on a real redis-server with its scripts loaded,
// and measure, which fails unless an operation costs exactly one EVALSHA.
func countedStore(t *testing.T, opts redisstore.Options) (*redisstore.Store, func(name string, op func())) {
	t.Helper()
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	hook := &counter{}
	rdb.AddHook(hook)
	s := redisstore.New(rdb, opts)
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	warmUp(t, s)
	return s, func(name string, op func()) { t.Helper(); oneRoundTrip(t, srv, hook, name, op) }
}

// oneRoundTrip fails unless op sends exactly one command, an EVALSHA or
// an FCALL, counted by the client hook and by the server (INFO
// commandstats also counts the commands a script runs inside, so only the
// script commands are read).
func oneRoundTrip(t *testing.T, srv *redistest.Server, hook *counter, name string, op func()) {
	t.Helper()
	before, stats := hook.n.Load(), srv.CommandStats(t)
	op()
	after := srv.CommandStats(t)
	if got, want := hook.n.Load()-before, int64(1); got != want {
		t.Errorf("%s: client sent %d commands, want %d", name, got, want)
	}
	if got, want := after["evalsha"]+after["fcall"]-stats["evalsha"]-stats["fcall"], int64(1); got != want {
		t.Errorf("%s: server ran %d EVALSHA or FCALL, want %d", name, got, want)
	}
	if got := after["eval"] - stats["eval"]; got != 0 {
		t.Errorf("%s: server ran %d EVAL (script not loaded?)", name, got)
	}
}

// TestUnavailable proves a dead Redis gives a quick ErrUnavailable, and that
// the store recovers when Redis is back.
func TestUnavailable(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := redis.NewClient(&redis.Options{
		Addr: srv.Addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond, MaxRetries: -1, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { rdb.Close() })
	s := redisstore.New(rdb, redisstore.Options{})
	srv.Kill()

	start := time.Now()
	_, _, err := s.Hold(context.Background(), holdRequest(t, "C-1", "credit_card", time.Now()))
	wantReason(t, err, validation.ReasonUnavailable)
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failing with Redis down took %v; timeouts are not bounded", d)
	}

	srv.Restart(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	hold(t, s, "C-1", "credit_card", time.Now()) // NOSCRIPT after restart falls back to EVAL
}

// TestRoundTripsEligibility: a blocked customer's refusal and a check on a
// warm rating cache are one EVALSHA each too.
func TestRoundTripsEligibility(t *testing.T) {
	s, once := countedStore(t, redisstore.Options{})
	ctx := context.Background()
	if _, err := s.Block(ctx, validation.BlockRequest{CustomerID: "B-1", Reason: "fraud", Actor: "ops", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	once("blocked refusal", func() {
		_, _, err := s.Hold(ctx, holdRequest(t, "B-1", "credit_card", time.Now()))
		wantReason(t, err, validation.ReasonCustomerBlocked)
	})
	warm := holdRequest(t, "R-1", "credit_card", time.Now())
	warm.Rule.MinRating, warm.Rating = 500, validation.RatingInput{Score: score(700), CacheTTL: time.Hour}
	if _, _, err := s.Hold(ctx, warm); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "R-1", CheckID: warm.CheckID, Actor: "x", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	once("check on a warm rating cache", func() {
		req := holdRequest(t, "R-1", "credit_card", time.Now())
		req.Rule.MinRating, req.Rating.CacheTTL = 500, time.Hour
		if _, _, err := s.Hold(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
}
