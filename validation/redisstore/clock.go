package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
)

// Defaults of ClockOptions.
const (
	DefaultClockInterval  = 15 * time.Second
	DefaultClockWarnAbove = time.Second
	// DefaultClockMaxAge is how old the last measurement may be before
	// Ready refuses: four refreshes missed in a row.
	DefaultClockMaxAge = 4 * DefaultClockInterval
)

// clockSamples is how many TIME round trips one measurement takes; the
// one with the shortest round trip wins, as in NTP, because its midpoint
// is the least uncertain.
const clockSamples = 3

// ClockOptions configure a Clock. The zero value of each field means its
// default.
type ClockOptions struct {
	// Local is this process's clock; default time.Now. Tests skew it.
	Local func() time.Time
	// Interval is how often Run measures the offset again; default 15s.
	Interval time.Duration
	// MaxAge is how old the last good measurement may be before Ready
	// refuses; default 1m.
	MaxAge time.Duration
	// WarnAbove: an offset larger than this (either way) is logged at WARN
	// at every measurement; default 1s.
	WarnAbove time.Duration
	// Log gets the WARN lines; default slog.Default().
	Log *slog.Logger
	// Observe, when set, is given every measured offset (Redis's clock
	// minus the local one): the metric.
	Observe func(offset time.Duration)
}

// Clock is arbiter's one clock: Redis's, read as the local clock plus the
// offset measured against Redis's TIME. Every instance on one Redis then
// agrees on the time to within the measurement's error (half a round trip),
// whatever the hosts' clocks say, so holds, OTP windows, token iat and exp
// and every expiry decision are the same whichever instance makes them.
// Reading it costs no round trip: the offset is measured in the background
// (Run), never on the hot path. Safe for concurrent use.
type Clock struct {
	rdb  redis.UniversalClient // nil: a clock that is its local clock
	opts ClockOptions

	mu       sync.Mutex
	offset   time.Duration
	measured time.Time // local time of the last good measurement; zero: never
}

// NewClock returns the clock of the Redis behind rdb. It is not Ready
// until Sync (or Run) has measured the offset once. A nil rdb gives a
// clock with offset 0 that is always ready: the embedded Redis shares
// this process's clock.
func NewClock(rdb redis.UniversalClient, opts ClockOptions) *Clock {
	if opts.Local == nil {
		opts.Local = time.Now
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultClockInterval
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultClockMaxAge
	}
	if opts.WarnAbove <= 0 {
		opts.WarnAbove = DefaultClockWarnAbove
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Clock{rdb: rdb, opts: opts}
}

// Now returns Redis's time: the local clock plus the last measured offset
// (0 before the first measurement).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	off := c.offset
	c.mu.Unlock()
	return c.opts.Local().Add(off)
}

// Offset returns the last measured offset (Redis's clock minus the local
// one) and whether there has been a measurement.
func (c *Clock) Offset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, !c.measured.IsZero() || c.rdb == nil
}

// Ready returns nil once the offset has been measured within MaxAge, and
// otherwise a validation.Error with reason unavailable: an instance whose
// clock is not known to agree with Redis's serves nothing that depends on
// time.
func (c *Clock) Ready() error {
	if c.rdb == nil {
		return nil
	}
	c.mu.Lock()
	measured := c.measured
	c.mu.Unlock()
	switch {
	case measured.IsZero():
		return validation.ClockNotMeasured()
	case c.opts.Local().Sub(measured) > c.opts.MaxAge:
		return validation.ClockStale(c.opts.Local().Sub(measured))
	}
	return nil
}

// Sync measures the offset now: clockSamples TIME round trips, keeping
// the midpoint of the shortest. It logs a WARN line when the offset
// exceeds WarnAbove.
func (c *Clock) Sync(ctx context.Context) error {
	if c.rdb == nil {
		return nil
	}
	var best, bestRTT time.Duration
	var ok bool
	var errs []error
	for range clockSamples {
		t0 := c.opts.Local()
		server, err := c.rdb.Time(ctx).Result()
		t1 := c.opts.Local()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rtt := t1.Sub(t0)
		mid := t0.Add(rtt / 2)
		if off := server.Sub(mid); !ok || rtt < bestRTT {
			best, bestRTT, ok = off, rtt, true
		}
	}
	if !ok {
		return fmt.Errorf("redis TIME: %w", errors.Join(errs...))
	}
	c.mu.Lock()
	c.offset, c.measured = best, c.opts.Local()
	c.mu.Unlock()
	if c.opts.Observe != nil {
		c.opts.Observe(best)
	}
	if best > c.opts.WarnAbove || best < -c.opts.WarnAbove {
		c.opts.Log.Warn("this host's clock differs from Redis's; arbiter uses Redis's time, but fix the host's NTP",
			"offset_seconds", best.Seconds(), "round_trip_ms", float64(bestRTT.Microseconds())/1000, "threshold_seconds", c.opts.WarnAbove.Seconds())
	}
	return nil
}

// Run measures the offset every Interval until ctx ends, and every second
// until the first measurement succeeds, so an instance that started while
// Redis was away becomes ready soon after it returns. A failed measurement
// keeps the last offset (Ready refuses once it is older than MaxAge) and
// is logged.
func (c *Clock) Run(ctx context.Context) {
	if c.rdb == nil {
		return
	}
	t := time.NewTimer(c.next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			mctx, cancel := context.WithTimeout(ctx, min(c.opts.Interval/2, 5*time.Second))
			if err := c.Sync(mctx); err != nil && ctx.Err() == nil {
				c.opts.Log.Warn("could not measure the clock offset to Redis; keeping the last one", "err", err)
			}
			cancel()
			t.Reset(c.next())
		}
	}
}

// next is how long Run waits before its next measurement.
func (c *Clock) next() time.Duration {
	if _, ok := c.Offset(); !ok {
		return min(c.opts.Interval, time.Second)
	}
	return c.opts.Interval
}
