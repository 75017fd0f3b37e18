package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// TestGrantsStayAListpack: the ledger keeps a grant short (g1, the check
// id as the field), so on a Redis with default settings a granted
// customer's grants hash is a listpack, the one key kept for ever. Both
// decoders read the stored grant as the scripts' reply says it. A ledger
// that a whole check (as the previous release wrote) made a hash table is
// a listpack again once migrated, and reads the same.
func TestGrantsStayAListpack(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	ctx := context.Background()
	s := New(rdb, Options{CompactGrants: true})
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// A customer id of a bank's usual length: the check id, the field, is
	// 25 bytes longer.
	const customer = "C0123456789-ABCDEFGH"
	key := "arb:{" + customer + "}:grants"
	h := heldCheck(t, s, rdb, customer, now, true)
	r, _ := validation.DefaultPolicy().Rule("credit_card")
	g, _, err := s.Redeem(ctx, validation.RedeemRequest{Rule: r, CustomerID: customer, CheckID: h.ID, TokenHash: h.Token,
		Actor: "card-service", Now: now, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	raw := rdb.HGet(ctx, key, h.ID).Val()
	if !strings.HasPrefix(raw, grantCodec.prefix) || len(raw) > 64 {
		t.Fatalf("stored grant %q (%d bytes); want g1, at most 64 bytes", raw, len(raw))
	}
	if e := ledgerEncoding(t, rdb, key); e != "listpack" {
		t.Fatalf("the ledger of a granted customer is a %s", e)
	}
	stored, err := decodeStoredGrant(customer, h.ID, raw)
	if err != nil || stored != g {
		t.Fatalf("stored grant reads %+v, %v; the redemption answered %+v", stored, err, g)
	}
	cu, err := s.Customer(ctx, customer, now)
	if err != nil || len(cu.Grants) != 1 || cu.Grants[0] != g {
		t.Fatalf("customer = %+v, %v; want the grant %+v", cu, err, g)
	}

	// The grant as the previous release kept it, the whole check: the
	// ledger becomes a hash table, and still reads the same.
	whole := rdb.HGet(ctx, "arb:{"+customer+"}:checks", h.ID).Val()
	if err := rdb.HSet(ctx, key, h.ID, whole).Err(); err != nil {
		t.Fatal(err)
	}
	if e := ledgerEncoding(t, rdb, key); e != "hashtable" {
		t.Fatalf("a whole check left the ledger a %s", e)
	}
	if cu, err := s.Customer(ctx, customer, now); err != nil || len(cu.Grants) != 1 || cu.Grants[0] != g {
		t.Fatalf("customer = %+v, %v; want the grant %+v", cu, err, g)
	}
	rep, err := s.Migrate(ctx, MigrateOptions{})
	if err != nil || rep.Ledger != 1 || rep.Total() != 1 {
		t.Fatalf("migrate = %+v, %v; want the one grant", rep, err)
	}
	if e := ledgerEncoding(t, rdb, key); e != "listpack" {
		t.Fatalf("the migrated ledger is a %s", e)
	}
	if got := rdb.HGet(ctx, key, h.ID).Val(); got != raw {
		t.Fatalf("migrated grant %q, a redemption writes %q", got, raw)
	}
}

func ledgerEncoding(tb testing.TB, rdb redis.UniversalClient, key string) string {
	tb.Helper()
	e, err := rdb.ObjectEncoding(context.Background(), key).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// TestStoredGrantDecodes pins the Go reader of the ledger's values: a
// digest version written ':', a named one as it is, an import's fence
// after its grant (a negative lag).
func TestStoredGrantDecodes(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want validation.Grant
	}{
		{"g1\x1fcredit_card\x1f1000\x1f3\x1fcard-service\x1f\x1f:ac8edd3a6a9c",
			validation.Grant{CustomerID: "C", CheckID: "chk_x_C", Product: "credit_card", Fence: 997, GrantedAt: msTime(1000),
				RedeemedBy: "card-service", PolicyVersion: "sha256:ac8edd3a6a9c"}},
		{"g1\x1fpersonal_loan\x1f1000\x1f-5000\x1fops\x1f1\x1f2026-q4",
			validation.Grant{CustomerID: "C", CheckID: "chk_x_C", Product: "personal_loan", Fence: 6000, GrantedAt: msTime(1000),
				RedeemedBy: "ops", PolicyVersion: "2026-q4"}},
	} {
		got, err := decodeStoredGrant("C", "chk_x_C", tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("decodeStoredGrant(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
		}
	}
	if _, err := decodeStoredGrant("C", "chk_x_C", "g0\x1fcredit_card"); err == nil {
		t.Error("a value in another encoding read as a grant")
	}
}

// TestReleasedWholeGrantIsRecorded: a grant the previous release wrote
// (the whole check, no record beside it) is recorded when released, so
// that a replay of its redemption is told grant_released, as for a grant
// this release wrote (whose record the redemption left).
func TestReleasedWholeGrantIsRecorded(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	ctx := context.Background()
	s := New(rdb, Options{CompactGrants: true})
	now := time.Now()
	const customer = "W-1"
	h := heldCheck(t, s, rdb, customer, now, true)
	r, _ := validation.DefaultPolicy().Rule("credit_card")
	redeem := validation.RedeemRequest{Rule: r, CustomerID: customer, CheckID: h.ID, TokenHash: h.Token,
		Actor: "card-service", Now: now, MaxAttempts: 5}
	if _, _, err := s.Redeem(ctx, redeem); err != nil {
		t.Fatal(err)
	}
	records := "arb:{" + customer + "}:checks"
	whole := rdb.HGet(ctx, records, h.ID).Val()
	if err := rdb.HSet(ctx, "arb:{"+customer+"}:grants", h.ID, whole).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HDel(ctx, records, h.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if _, replayed, err := s.Redeem(ctx, redeem); err != nil || !replayed {
		t.Fatalf("replay of the whole grant = %v, replayed %v", err, replayed)
	}
	if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: customer, Product: "credit_card", Actor: "card-service", Now: now}); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Redeem(ctx, redeem)
	if !errors.Is(err, validation.ErrGrantReleased) {
		t.Fatalf("replay after the release = %v, want %v", err, validation.ErrGrantReleased)
	}
}

// TestShortAuditLeavesTheLedger: with an archive keeping the records
// (OutboxCap) and the recent audit set to a day, a granted customer's keys
// other than the ledger all expire: the audit a day after its newest
// event, the check's record a day after the redemption, meta at most two
// days after the audit. The ledger has no TTL.
func TestShortAuditLeavesTheLedger(t *testing.T) {
	const day = 24 * time.Hour
	s, rdb := loadedStore(t, Options{CompactGrants: true, OutboxCap: 1024, AuditCap: 20, AuditRetention: day})
	ctx := context.Background()
	now := time.Now()
	const customer = "C0123456789-SHORT"
	h := heldCheck(t, s, rdb, customer, now, false)
	r, _ := validation.DefaultPolicy().Rule("credit_card")
	if _, _, err := s.Redeem(ctx, validation.RedeemRequest{Rule: r, CustomerID: customer, CheckID: h.ID, TokenHash: h.Token,
		Actor: "card-service", Now: now, MaxAttempts: 5}); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "arb:{"+customer+"}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	bounds := map[string][2]time.Duration{ // name: (least, most) TTL
		"audit":   {day - time.Minute, day},
		"checks":  {day - time.Minute, day},
		"meta":    {day, 3 * day},
		"grants":  {-1, -1},
		"idem:k1": {time.Hour - time.Minute, time.Hour}, // the check's Idempotency-Key, as the request set it
	}
	for _, key := range keys {
		name := strings.TrimPrefix(key, "arb:{"+customer+"}:")
		b, ok := bounds[name]
		if !ok {
			t.Errorf("key %s: not expected after check and redemption", key)
			continue
		}
		delete(bounds, name)
		ttl := rdb.PTTL(ctx, key).Val()
		if b[0] == -1 {
			if ttl != -1 {
				t.Errorf("%s expires in %s; the ledger is kept for ever", key, ttl)
			}
		} else if ttl < b[0] || ttl > b[1] {
			t.Errorf("%s expires in %s; want from %s to %s", key, ttl, b[0], b[1])
		}
	}
	for name := range bounds {
		t.Errorf("no %s key after check and redemption", name)
	}
}

// TestMetaExpiryIsNeverShortened: a tombstone and an import ask meta to
// live AuditRetention; neither cuts short the longer life a hold gave it
// (AuditRetention and two days), on which meta_ttl counts not to renew it
// for a day: with a day of audit, meta would otherwise end before a hold
// placed within that day, and the hold's shadow with it.
func TestMetaExpiryIsNeverShortened(t *testing.T) {
	const day = 24 * time.Hour
	s, rdb := loadedStore(t, Options{AuditRetention: day})
	ctx := context.Background()
	now := time.Now()
	for name, after := range map[string]func(customer string) error{
		"tombstone": func(customer string) error {
			id, err := validation.NewCheckID(customer)
			if err != nil {
				return err
			}
			out, err := s.Abandon(ctx, validation.AbandonRequest{CustomerID: customer, CheckID: id, Actor: "arbiter", Now: now})
			if err == nil && out != validation.AbandonTombstone {
				err = fmt.Errorf("abandon: %s, want a tombstone", out)
			}
			return err
		},
		"import": func(customer string) error {
			_, err := s.Import(ctx, validation.ImportRequest{Rule: storetest.LooseRule(t, "personal_loan"), CustomerID: customer,
				CheckID: "imp_" + customer, Actor: "ops", GrantedAt: now.AddDate(-1, 0, 0), Now: now})
			return err
		},
	} {
		// No subtests: the mutation test runs this one by name alone.
		customer := "C-KEEP-" + name
		h := heldCheck(t, s, rdb, customer, now, false)
		if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: customer, CheckID: h.ID, Actor: "branch-portal", Now: now}); err != nil {
			t.Fatal(err)
		}
		key := "arb:{" + customer + "}:meta"
		before := rdb.PTTL(ctx, key).Val()
		if before <= 2*day {
			t.Fatalf("%s: meta after a hold expires in %s; want a day of audit and two more", name, before)
		}
		if err := after(customer); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := rdb.PTTL(ctx, key).Val(); got < before-time.Minute {
			t.Errorf("meta expires in %s after the %s, %s before it: cut short", got, name, before)
		}
	}
}

// TestLongHoldKeepsItsMeta: a hold longer than the audit's retention and
// two days (a policy may ask one) keeps meta, and so the hold's shadow, to
// its end and the retention past it.
func TestLongHoldKeepsItsMeta(t *testing.T) {
	const day = 24 * time.Hour
	s, rdb := loadedStore(t, Options{AuditRetention: day})
	ctx := context.Background()
	const customer = "C-LONG-HOLD"
	id, err := validation.NewCheckID(customer)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := validation.DefaultPolicy().Rule("credit_card")
	r.HoldTTL = 5 * day
	if _, _, err := s.Hold(ctx, validation.HoldRequest{Rule: r, CustomerID: customer, CheckID: id, Secret: []byte("0123456789abcdefghij"),
		TokenHash: "digest", Actor: "card-service", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := rdb.PTTL(ctx, "arb:{"+customer+"}:meta").Val(); got < 6*day-time.Minute {
		t.Fatalf("meta of a 5-day hold expires in %s; want the hold's 5 days and a day of audit", got)
	}
}

// loadedStore is a Store with opts on a redis-server of its own, its
// scripts loaded.
func loadedStore(tb testing.TB, opts Options) (*Store, redis.UniversalClient) {
	tb.Helper()
	rdb := redistest.MustStartRedis(tb).Client(tb)
	s := New(rdb, opts)
	if err := s.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s, rdb
}
