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
// It is harsher than production, never milder: the checks' 24 h records
// and idempotency keys outlive meta here, where in production meta
// outlives them by a day or more.
// (f) then allows the one jump in the customer's record numbers that each
// expiry makes: from the number the script saw, to a number taken from the
// clock after the expiry and before the customer's next one.
func expireIdleMeta(ctx context.Context, tb testing.TB, m *model, rng *rand.Rand, _ time.Duration) {
	rdb := m.redis.Client(tb)
	for pause(ctx, time.Duration(200+rng.IntN(600))*time.Millisecond) {
		for _, c := range m.customers() {
			r, err := expireMetaScript.Run(ctx, rdb, []string{"arb:{" + c + "}:meta", "arb:{" + c + "}:hold"}, expireIdle).StringSlice()
			if err != nil || len(r) != 2 {
				continue // not expired (nil), or Redis restarting: the next round
			}
			at, _ := strconv.ParseInt(r[1], 10, 64)
			m.expired.add(c, r[0], at)
			m.stats.add("nemesis: meta expired")
		}
	}
}

// expireIdle is how far behind Redis's clock, in ms, a customer's newest
// fence and record number must be for expireIdleMeta to expire its meta.
const expireIdle = 1000

// expireMetaScript deletes KEYS[1], the customer's meta, if a real expiry
// could have (see expireIdleMeta), and returns the seq it had ("" for
// none) and Redis's clock then, in ms; nil when it left it. ARGV[1]:
// expireIdle.
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
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(m.fence or '0') > now - tonumber(ARGV[1]) or tonumber(m.seq or '0') > now - tonumber(ARGV[1]) then return false end
redis.call('DEL', KEYS[1])
return {m.seq or '', string.format('%d', now)}
`)

// expiredMetas records, by customer and in order, each expiry of its
// meta: the record number it left ("" for none) and when.
type expiredMetas struct {
	mu  sync.Mutex
	all map[string][]metaExpiry
}

type metaExpiry struct {
	seq string
	at  int64 // Redis's clock at the DEL, ms
}

func (e *expiredMetas) add(customer, seq string, at int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.all == nil {
		e.all = map[string][]metaExpiry{}
	}
	e.all[customer] = append(e.all[customer], metaExpiry{seq: seq, at: at})
}

// jumped says whether customer's record numbers may go from `from` to
// `to` through an expiry of its meta: one left from as its newest number,
// and to was taken from the clock after it (less the arbiter clock's
// error, within expireIdle) and before the next expiry that found records
// numbered since (each of which must be expireIdle behind it).
func (e *expiredMetas) jumped(customer string, from, to int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.all[customer]
	for i, x := range list {
		if x.seq != strconv.FormatInt(from, 10) || to < x.at-expireIdle {
			continue
		}
		next := slices.IndexFunc(list[i+1:], func(y metaExpiry) bool { return y.seq != "" })
		if next < 0 || to < list[i+1+next].at-expireIdle {
			return true
		}
	}
	return false
}
