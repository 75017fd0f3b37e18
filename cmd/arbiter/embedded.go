//go:build !noembedded

package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Embedded mode: with no ARBITER_REDIS_URL, arbiter runs the same scripts
// on an in-process miniredis, so that `go run ./cmd/arbiter` needs nothing
// installed. That is why the default build links miniredis; a production
// build leaves it out with -tags noembedded (deploy/Dockerfile does), and
// embedded_none.go then refuses an empty URL.

// startEmbedded starts the embedded Redis on a free loopback port, its
// TTLs driven by the real clock; stop shuts both down.
func startEmbedded() (addr string, stop func(), err error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return "", nil, fmt.Errorf("embedded redis: %w", err)
	}
	stopClock := driveClock(mr, embeddedTick)
	return mr.Addr(), func() { stopClock(); mr.Close() }, nil
}

// embeddedTick is how often the embedded Redis's TTLs advance: holds
// expire at most this late.
const embeddedTick = 100 * time.Millisecond

// driveClock advances miniredis's TTLs with the real clock every tick, until
// the returned stop is called. miniredis never expires keys on its own, and
// its per-command clock (ClockTTL) walks every key on every command, which
// makes embedded mode slow down as data accumulates; a ticker costs one walk
// per tick instead.
func driveClock(mr *miniredis.Miniredis, tick time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-finished })
	}
}
