package web

import (
	"log/slog"
	"sync"
	"time"
)

// A full Redis (maxmemory reached, noeviction) refuses every write that
// may add memory, so every check fails, and fails alike: logging each one
// would flood the log with one line per request. storeFull therefore
// counts every refusal (arbiter_store_full_total), logs one line per
// storeFullLogEvery saying how many it stands for, and tells /readyz,
// which reports a full store in its body but stays 200: redemptions of
// live holds still work, and every instance shares the store, so failing
// readiness would take them all out of the balancer at once.

// storeFullLogEvery is the least time between two "redis is full" lines;
// it is also how long /readyz reports a full store after its last refusal.
const storeFullLogEvery = time.Minute

// storeFullRetryAfter is the Retry-After of a store_full answer, in
// seconds: memory comes back as holds expire or when an operator acts,
// not within the second a lost connection takes.
const storeFullRetryAfter = 10

// storeFullMsg is the log line's message.
const storeFullMsg = "redis is full (maxmemory reached): writes that add data answer 503 store_full, " +
	"redemptions of live holds still work; raise maxmemory and find what grows (docs/operations.md: A full Redis)"

// storeFull watches the requests refused because the store is full.
type storeFull struct {
	log   *slog.Logger
	now   func() time.Time
	count func(route string)

	mu         sync.Mutex
	last       time.Time // the latest refusal
	logged     time.Time // the latest log line
	suppressed int       // refusals since that line, not logged
}

// refused records one request refused with store_full on route.
func (s *storeFull) refused(route string, err error) {
	s.count(route)
	now := s.now()
	s.mu.Lock()
	s.last = now
	if !s.logged.IsZero() && now.Sub(s.logged) < storeFullLogEvery {
		s.suppressed++
		s.mu.Unlock()
		return
	}
	prev, suppressed := s.logged, s.suppressed
	s.logged, s.suppressed = now, 0
	s.mu.Unlock()
	attrs := []any{"route", route, "suppressed", suppressed, "err", err}
	if !prev.IsZero() {
		attrs = append(attrs, "previous_line_at", prev)
	}
	s.log.Error(storeFullMsg, attrs...)
}

// since returns when the latest refusal happened, if within the last
// storeFullLogEvery.
func (s *storeFull) since() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last.IsZero() || s.now().Sub(s.last) >= storeFullLogEvery {
		return time.Time{}, false
	}
	return s.last, true
}
