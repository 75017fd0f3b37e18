package e2e_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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
// and record number expireIdle behind the clock (a day, in production).
// It is harsher than production, never milder: the checks' 24 h records
// and idempotency keys outlive meta here, where in production meta
// outlives them by a day or more.
// (f) then allows the one jump in the customer's record numbers that each
// expiry makes: from the number the script saw, to a number taken from the
// clock after the expiry and before the customer's next one. The script
// records each expiry in Redis with its DEL (metaExpiredKey), so that one
// whose reply a Redis restart lost is known all the same.
func expireIdleMeta(ctx context.Context, tb testing.TB, m *model, rng *rand.Rand, _ time.Duration) {
	rdb := m.redis.Client(tb)
	for pause(ctx, time.Duration(200+rng.IntN(600))*time.Millisecond) {
		for _, c := range m.customers() {
			keys := []string{"arb:{" + c + "}:meta", "arb:{" + c + "}:hold", metaExpiredKey}
			if rdb.Eval(ctx, expireMetaScript, keys, expireIdle, c).Err() == nil {
				m.stats.add("nemesis: meta expired")
			} // else not expired (nil), or Redis restarting: the next round
		}
	}
}

// expireIdle is how far behind Redis's clock, in ms, a customer's newest
// fence and record number must be for expireIdleMeta to expire its meta.
// A script carries the time arbiter sent it (NOW), and a stalled link
// (stallRedisLink: up to 2 s) delivers some scripts that much later: after
// an expiry such a script numbers from its stale NOW, which must still be
// past the numbers meta had. At 1 s a CI run saw a restart 17 ms above
// the last number; in production meta outlives its last number by a day.
const expireIdle = 5000

// metaExpiredKey is the list where expireMetaScript records each expiry:
// "customer|seq|ms", seq the record number meta had ("" for none), ms
// Redis's clock. Outside arb:*, arbiter never reads it.
const metaExpiredKey = "model:meta-expired"

// expireMetaScript deletes KEYS[1], the customer's meta, if a real expiry
// could have (see expireIdleMeta), and records it in KEYS[3]; nil when it
// left it. ARGV: expireIdle, the customer.
const expireMetaScript = `
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
redis.call('RPUSH', KEYS[3], ARGV[2] .. '|' .. (m.seq or '') .. '|' .. string.format('%d', now))
return 1
`

// metaExpiries are the expiries expireIdleMeta made, by customer, in
// order.
type metaExpiries map[string][]metaExpiry

type metaExpiry struct {
	seq string
	at  int64 // Redis's clock at the DEL, ms
}

// metaExpiries reads what expireIdleMeta recorded (none without a single
// Redis, or without the nemesis).
func (m *model) metaExpiries(tb testing.TB) metaExpiries {
	tb.Helper()
	out := metaExpiries{}
	if m.redis == nil {
		return out
	}
	all, err := m.redis.Client(tb).LRange(context.Background(), metaExpiredKey, 0, -1).Result()
	if err != nil {
		tb.Fatalf("reading the expiries of meta: %v", err)
	}
	for _, e := range all {
		f := strings.Split(e, "|")
		at, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if len(f) != 3 || err != nil {
			tb.Fatalf("an expiry of meta recorded as %q", e)
		}
		out[f[0]] = append(out[f[0]], metaExpiry{seq: f[1], at: at})
	}
	return out
}

// jumped says whether customer's record numbers may go from `from` to
// `to` through an expiry of its meta: one left from as its newest number,
// and to was taken from the clock after it (less the arbiter clock's
// error, within expireIdle) and before the next expiry that found records
// numbered since (each of which must be expireIdle behind it).
func (e metaExpiries) jumped(customer string, from, to int64) bool {
	list := e[customer]
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
