package redisstore

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// shadowBackends are the two stores the shadow tests run on.
var shadowBackends = map[string]func(testing.TB) redis.UniversalClient{
	"redis": func(tb testing.TB) redis.UniversalClient { return redistest.MustStartRedis(tb).Client(tb) },
	"miniredis": func(tb testing.TB) redis.UniversalClient {
		rdb := redis.NewClient(&redis.Options{Addr: redistest.MustStartMiniredis(tb).Addr()})
		tb.Cleanup(func() { rdb.Close() })
		return rdb
	},
}

// heldCheck places a hold for customer with every field a held check can
// have (an agent, a token digest, and delivered through an idempotent
// replay, unless !deliver), and returns the hold's stored value.
func heldCheck(tb testing.TB, s *Store, rdb redis.UniversalClient, customer string, now time.Time, deliver bool) storedCheck {
	tb.Helper()
	ctx := context.Background()
	id, err := validation.NewCheckID(customer)
	if err != nil {
		tb.Fatal(err)
	}
	r, _ := validation.DefaultPolicy().Rule("credit_card")
	req := validation.HoldRequest{Rule: r, CustomerID: customer, CheckID: id, Secret: []byte("0123456789abcdefghij"),
		TokenHash: "digest-of-the-token-secret", Actor: "branch-portal", AgentID: "ana", Now: now,
		IdempotencyKey: "k1", RequestHash: "body-1", IdempotencyTTL: time.Hour}
	if _, _, err := s.Hold(ctx, req); err != nil {
		tb.Fatal(err)
	}
	if deliver {
		deliverHold(tb, s, customer, id, now)
	}
	h := holdValue(tb, rdb, customer)
	if h.Delivered != deliver || h.Secret == "" {
		tb.Fatalf("hold %+v lacks a field the test means to cover", h)
	}
	// Every field a held check can have is set here: a field tagged held
	// that the check script never sets, or that this request leaves
	// empty, fails the test rather than going uncovered.
	v := reflect.ValueOf(h)
	for _, f := range checkCodec.fields {
		if f.held && f.name != "delivered" && v.Field(f.index).IsZero() {
			tb.Fatalf("hold %+v: its %s is empty; set it here (or it is not a held field)", h, f.name)
		}
	}
	return h
}

// deliverHold replays heldCheck's check (same idempotency key and body),
// which marks the hold delivered.
func deliverHold(tb testing.TB, s *Store, customer, id string, now time.Time) {
	tb.Helper()
	r, _ := validation.DefaultPolicy().Rule("credit_card")
	req := validation.HoldRequest{Rule: r, CustomerID: customer, CheckID: id, Secret: []byte("0123456789abcdefghij"),
		Actor: "branch-portal", AgentID: "ana", Now: now, IdempotencyKey: "k1", RequestHash: "body-1", IdempotencyTTL: time.Hour}
	if _, replayed, err := s.Hold(context.Background(), req); err != nil || !replayed {
		tb.Fatalf("replay = %v, %v", replayed, err)
	}
}

// holdValue returns the stored value of customer's live hold.
func holdValue(tb testing.TB, rdb redis.UniversalClient, customer string) storedCheck {
	tb.Helper()
	raw, err := rdb.Get(context.Background(), "arb:{"+customer+"}:hold").Result()
	if err != nil {
		tb.Fatal(err)
	}
	return mustParse(tb, raw)
}

func mustParse(tb testing.TB, raw string) storedCheck {
	tb.Helper()
	c, err := parseCheck(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// settled drops customer's hold as its TTL would and returns the record
// the next script settles it into.
func settled(tb testing.TB, s *Store, rdb redis.UniversalClient, customer, id string, now time.Time) storedCheck {
	tb.Helper()
	ctx := context.Background()
	if err := rdb.Del(ctx, "arb:{"+customer+"}:hold").Err(); err != nil {
		tb.Fatal(err)
	}
	if c, err := s.Check(ctx, customer, id, now); err != nil || c.Status != validation.StatusExpired {
		tb.Fatalf("check after the hold's expiry = %+v, %v", c, err)
	}
	return mustParse(tb, mustHGet(tb, rdb, "arb:{"+customer+"}:checks", id))
}

// wantSettledFrom fails unless record is hold expired: every field the
// hold had, its secret dropped.
func wantSettledFrom(tb testing.TB, record, hold storedCheck) {
	tb.Helper()
	want := hold
	want.Status, want.Secret, want.Ended, want.EndedBy = "expired", "", hold.Expires, "arbiter"
	if record != want {
		tb.Fatalf("settled record\n %+v\nwant the hold's fields\n %+v", record, want)
	}
}

// TestSettleKeepsEveryField: once Redis has dropped a hold, the expired
// record is built from meta's shadow of it (h.<field>, see the prelude's
// hold section). A field that held checks carry but HELD misses would be
// lost here.
func TestSettleKeepsEveryField(t *testing.T) {
	for name, start := range shadowBackends {
		t.Run(name, func(t *testing.T) {
			rdb := start(t)
			s := New(rdb, Options{})
			now := time.Now().Truncate(time.Millisecond)
			h := heldCheck(t, s, rdb, "S-1", now, true)
			wantSettledFrom(t, settled(t, s, rdb, "S-1", h.ID, now), h)
			left, err := rdb.HKeys(context.Background(), "arb:{S-1}:meta").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range left {
				if f == "open" || strings.HasPrefix(f, "h.") {
					t.Errorf("meta keeps %s after the settle: %v", f, left)
				}
			}
		})
	}
}

func mustHGet(tb testing.TB, rdb redis.UniversalClient, key, field string) string {
	tb.Helper()
	v, err := rdb.HGet(context.Background(), key, field).Result()
	if err != nil {
		tb.Fatalf("HGET %s %s: %v", key, field, err)
	}
	return v
}

// TestMetaStaysAListpack: every value meta keeps is short, so on a Redis
// with default settings it stays a listpack through a check, a replay and
// a redemption (a hash table costs about 360 bytes more per customer).
func TestMetaStaysAListpack(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	ctx := context.Background()
	s := New(rdb, Options{})
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	encoding := func() string {
		t.Helper()
		e, err := rdb.ObjectEncoding(ctx, "arb:{M-1}:meta").Result()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	h := heldCheck(t, s, rdb, "M-1", now, true)
	if e := encoding(); e != "listpack" {
		t.Fatalf("meta of a live hold is a %s", e)
	}
	r, _ := validation.DefaultPolicy().Rule("credit_card")
	if _, _, err := s.Redeem(ctx, validation.RedeemRequest{Rule: r, CustomerID: "M-1", CheckID: h.ID, TokenHash: h.Token,
		Actor: "card-service", Now: now, MaxAttempts: 5}); err != nil {
		t.Fatal(err)
	}
	if e := encoding(); e != "listpack" {
		t.Fatalf("meta of a granted customer is a %s", e)
	}
}
