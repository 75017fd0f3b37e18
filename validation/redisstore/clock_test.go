package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// skewedClock is a host clock off by a settable amount.
type skewedClock struct {
	mu   sync.Mutex
	skew time.Duration
}

func (c *skewedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

func (c *skewedClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.skew += d
}

func TestClock(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	ctx := context.Background()

	t.Run("reads Redis's time whatever the host's", func(t *testing.T) {
		host := &skewedClock{skew: -5 * time.Minute}
		var logs bytes.Buffer
		var observed []time.Duration
		c := redisstore.NewClock(rdb, redisstore.ClockOptions{Local: host.now,
			Log: slog.New(slog.NewTextHandler(&logs, nil)), Observe: func(d time.Duration) { observed = append(observed, d) }})
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		server, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d := c.Now().Sub(server); d < -time.Second || d > time.Second {
			t.Fatalf("clock reads %s from Redis's TIME, want within 1s", d)
		}
		off, ok := c.Offset()
		if !ok || off < 5*time.Minute-time.Second || off > 5*time.Minute+time.Second {
			t.Fatalf("offset = %s, %v, want about 5m", off, ok)
		}
		if len(observed) != 1 || observed[0] != off {
			t.Fatalf("observed %v, want [%s]", observed, off)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "offset_seconds=") {
			t.Fatalf("no WARN line for a 5 minute offset: %q", logs.String())
		}
	})

	t.Run("no warning within the threshold", func(t *testing.T) {
		var logs bytes.Buffer
		c := redisstore.NewClock(rdb, redisstore.ClockOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if logs.Len() > 0 {
			t.Fatalf("logged %q for the host's own clock", logs.String())
		}
	})

	t.Run("ready only once measured, and while recent", func(t *testing.T) {
		host := &skewedClock{}
		c := redisstore.NewClock(rdb, redisstore.ClockOptions{Local: host.now, MaxAge: time.Minute})
		var ve *validation.Error
		if err := c.Ready(); !errors.As(err, &ve) || ve.Reason != validation.ReasonUnavailable {
			t.Fatalf("Ready before any measurement = %v, want unavailable", err)
		}
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Ready(); err != nil {
			t.Fatalf("Ready after a measurement = %v", err)
		}
		host.add(61 * time.Second)
		if err := c.Ready(); !errors.As(err, &ve) || ve.Reason != validation.ReasonUnavailable {
			t.Fatalf("Ready 61s after the last measurement = %v, want unavailable", err)
		}
	})

	t.Run("a Redis that is gone keeps the clock unready", func(t *testing.T) {
		gone := redistest.MustStartRedis(t)
		grdb := gone.Client(t)
		gone.Kill()
		c := redisstore.NewClock(grdb, redisstore.ClockOptions{})
		if err := c.Sync(ctx); err == nil {
			t.Fatal("Sync against a dead Redis succeeded")
		}
		if c.Ready() == nil {
			t.Fatal("ready without a measurement")
		}
	})

	t.Run("embedded: the host clock, always ready", func(t *testing.T) {
		c := redisstore.NewClock(nil, redisstore.ClockOptions{})
		if err := c.Ready(); err != nil {
			t.Fatal(err)
		}
		if off, ok := c.Offset(); off != 0 || !ok {
			t.Fatalf("offset = %s, %v, want 0, true", off, ok)
		}
	})
}
