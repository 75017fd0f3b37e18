package e2e_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// expireIdleMeta plays a customer's meta running out its TTL: in
// production it lives ARBITER_AUDIT_RETENTION (at least a day) plus up to
// two after the customer's newest hold, and then the customer's fences
// and record numbers start again from Redis's clock, the live hold's
// shadow, last:<product> and the once-a-day renewal afresh. Scaled down:
// every few hundred milliseconds, every customer whose meta an expiry
// could have taken loses it, in one script so that nothing lands between
// the look and the DEL. "Could have taken" is what a day of quiet makes
// true: no hold, none unsettled (open), no tombstone, no wrong-code
// window (the retention is at least the OTP window), and a newest fence
// and record number a second behind the clock (a day, in production).
// (f) then allows the one jump in the customer's record numbers that each
// expiry makes, from the number the script saw; no other.
func expireIdleMeta(ctx context.Context, tb testing.TB, m *model, rng *rand.Rand, _ time.Duration) {
	rdb := m.redis.Client(tb)
	for pause(ctx, time.Duration(200+rng.IntN(600))*time.Millisecond) {
		for _, c := range m.customers() {
			r, err := expireMetaScript.Run(ctx, rdb, []string{"arb:{" + c + "}:meta", "arb:{" + c + "}:hold"}, 1000).Text()
			if err != nil {
				continue // not expired (nil), or Redis restarting: the next round
			}
			m.expired.add(c, r)
			m.stats.add("nemesis: meta expired")
		}
	}
}

// expireMetaScript deletes KEYS[1], the customer's meta, if a real expiry
// could have (see expireIdleMeta), and returns the seq it had ("" for
// none); nil when it left it. ARGV[1]: how far behind Redis's clock, in
// ms, the newest fence and record number must be.
var expireMetaScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local f = redis.call('HGETALL', KEYS[1])
if #f == 0 then return false end
local m = {}
for i = 1, #f, 2 do
  if string.sub(f[i], 1, 2) == 't:' then return false end
  m[f[i]] = f[i + 1]
end
if m.open == '1' or m.otp_fails then return false end
local t = redis.call('TIME')
local before = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
if tonumber(m.fence or '0') > before or tonumber(m.seq or '0') > before then return false end
redis.call('DEL', KEYS[1])
return m.seq or ''
`)

// expiredMetas records, by customer, the record number each expiry of
// its meta left behind: the numbers (f) may jump from.
type expiredMetas struct {
	mu  sync.Mutex
	seq map[string][]int64
}

func (e *expiredMetas) add(customer, seq string) {
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil {
		return // no record numbered yet: nothing to jump from
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seq == nil {
		e.seq = map[string][]int64{}
	}
	e.seq[customer] = append(e.seq[customer], n)
}

// jumpedFrom says whether an expiry of customer's meta left seq as its
// newest record number.
func (e *expiredMetas) jumpedFrom(customer string, seq int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.seq[customer], seq)
}
