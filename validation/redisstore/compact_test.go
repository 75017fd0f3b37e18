package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// v3Store runs the scripts of the release before compact grants
// (testdata/v3, see its README): the previous release, as an instance of
// it serves beside this one.
type v3Store struct {
	tb  testing.TB
	rdb redis.UniversalClient
}

// v3CommonArgs are that release's commonArgs.
type v3CommonArgs struct {
	Now            int64 `lua:"NOW,num,raw=NOW_STR"`
	AuditCap       int   `lua:"AUDIT_CAP,num"`
	Retention      int64 `lua:"RETENTION,num,raw=RETENTION_STR"`
	AuditRetention int64 `lua:"AUDIT_RETENTION,num,raw=AUDIT_RETENTION_STR"`
	OutboxCap      int   `lua:"OUTBOX_CAP,num"`
}

func (v v3Store) run(name, customer string, now time.Time, args, reply any) error {
	src := earlierScript(v.tb, "v3", name)
	common := v3CommonArgs{Now: now.UnixMilli(), AuditCap: DefaultAuditCap, Retention: DefaultRetention.Milliseconds(),
		AuditRetention: DefaultAuditRetention.Milliseconds()}
	res, err := redis.NewScript(src).Run(context.Background(), v.rdb, customerKeys(customer),
		argv(argv(nil, common), args)...).Slice()
	if err != nil {
		return err
	}
	if len(res) != 2 {
		return errors.New("v3 " + name + ": malformed reply")
	}
	r, _ := res[1].([]any)
	return decodeReply(reply, r)
}

func (v v3Store) check(customer, product, id, token string, now time.Time, ttl time.Duration) (checkReply, error) {
	var r checkReply
	err := v.run("check", customer, now, checkArgs{Product: product, Rules: todayRules[product], ID: id,
		Secret: hexOf(v1Secret), Token: token, TTL: ttl.Milliseconds(), Actor: "branch-portal", Agent: "ana"}, &r)
	return r, err
}

func (v v3Store) redeem(customer, product, id string, now time.Time) (redeemReply, error) {
	var r redeemReply
	err := v.run("redeem", customer, now, redeemTokenArgs{Product: product, ID: id, Actor: "card-service",
		Rules: todayRules[product]}, &r)
	return r, err
}

func (v v3Store) release(customer, product string, now time.Time) (grantReply, error) {
	var r grantReply
	err := v.run("release", customer, now, releaseArgs{Product: product, Actor: "card-service"}, &r)
	return r, err
}

func (v v3Store) get(customer, id string, now time.Time) (checkOpReply, error) {
	var r checkOpReply
	err := v.run("get", customer, now, idArgs{ID: id}, &r)
	return r, err
}

// TestWholeGrantsServeThePreviousRelease: with compact grants off (the
// default) a redemption writes the whole check to the ledger, the value
// the reply carries, and no record, as the previous release did; that
// release reads it (the check, a conflicting check, a release, its own
// replay). With compact grants on, the same redemption writes g1, on
// which the previous release fails for that customer (RETIRED), which is
// why compact grants wait until no instance of it serves.
func TestWholeGrantsServeThePreviousRelease(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	ctx, now := context.Background(), time.Now().Truncate(time.Millisecond)
	prev := v3Store{t, rdb}
	for _, compact := range []bool{false, true} {
		today := todayStore{New(rdb, Options{CompactGrants: compact})}
		customer := map[bool]string{false: "W-whole", true: "W-compact"}[compact]
		id := mustID(t, customer)
		if r, err := today.check(customer, "credit_card", id, "", now, time.Minute); err != nil || r.Kind != "held" {
			t.Fatalf("check = %+v, %v", r, err)
		}
		g, err := today.redeem(customer, "credit_card", id, now)
		if err != nil || g.Kind != "granted" {
			t.Fatalf("redeem = %+v, %v", g, err)
		}
		stored := rdb.HGet(ctx, "arb:{"+customer+"}:grants", id).Val()
		recorded := rdb.HExists(ctx, "arb:{"+customer+"}:checks", id).Val()
		_, getErr := prev.get(customer, id, now)
		if compact {
			if !strings.HasPrefix(stored, "g1"+sep) || !recorded {
				t.Fatalf("compact grants: ledger %q, recorded %v; want g1 and a record", stored, recorded)
			}
			if getErr == nil || !strings.Contains(getErr.Error(), retiredMsg) {
				t.Fatalf("the previous release reading a g1 grant: %v; want %s", getErr, retiredMsg)
			}
			continue
		}
		if stored != g.Grant || recorded {
			t.Fatalf("whole grants: ledger %q, recorded %v; want the reply's grant %q and no record", stored, recorded, g.Grant)
		}
		if getErr != nil {
			t.Fatalf("the previous release reading the check: %v", getErr)
		}
		if r, err := prev.get(customer, id, now); err != nil || r.Check != g.Grant {
			t.Fatalf("the previous release's check = %+v, %v; want %q", r, err, g.Grant)
		}
		if r, err := prev.redeem(customer, "credit_card", id, now); err != nil || r.Kind != "replay" {
			t.Fatalf("the previous release's replay = %+v, %v", r, err)
		}
		if r, err := prev.check(customer, "personal_loan", mustID(t, customer), "", now, time.Minute); err != nil ||
			r.Kind != "refused" || !strings.Contains(r.Violations, "credit_card") {
			t.Fatalf("the previous release's conflicting check = %+v, %v; want refused for credit_card", r, err)
		}
		if r, err := prev.release(customer, "credit_card", now); err != nil || r.Kind != "ok" {
			t.Fatalf("the previous release's release = %+v, %v", r, err)
		}
	}
}

// TestMigrateCompactsOnlyWhenOn: arbiter migrate with compact grants off
// converts only retired forms, to whole checks (a v1 JSON grant becomes
// one), and leaves whole and g1 grants as they are; with them on, it makes
// every grant g1.
func TestMigrateCompactsOnlyWhenOn(t *testing.T) {
	rdb := redistest.MustStartRedis(t).Client(t)
	ctx, now := context.Background(), time.Now().Truncate(time.Millisecond)
	whole, compact := New(rdb, Options{}), New(rdb, Options{CompactGrants: true})
	grant := func(s *Store, customer string) string {
		t.Helper()
		id := mustID(t, customer)
		if r, err := (todayStore{s}).check(customer, "credit_card", id, "", now, time.Minute); err != nil || r.Kind != "held" {
			t.Fatalf("check = %+v, %v", r, err)
		}
		if g, err := (todayStore{s}).redeem(customer, "credit_card", id, now); err != nil || g.Kind != "granted" {
			t.Fatalf("redeem = %+v, %v", g, err)
		}
		return id
	}
	wholeID, compactID := grant(whole, "M-whole"), grant(compact, "M-compact")
	const v1 = `{"check_id":"chk_v1","product":"credit_card","fence":3,"granted":1700000000000,"by":"card-service"}`
	if err := rdb.HSet(ctx, "arb:{M-v1}:grants", "chk_v1", v1).Err(); err != nil {
		t.Fatal(err)
	}
	ledger := func(customer, id string) string { return rdb.HGet(ctx, "arb:{"+customer+"}:grants", id).Val() }
	wholeBefore, compactBefore := ledger("M-whole", wholeID), ledger("M-compact", compactID)

	rep, err := whole.Migrate(ctx, MigrateOptions{})
	if err != nil || rep.Grants != 1 || rep.Total() != 1 {
		t.Fatalf("migrate, compact grants off = %+v, %v; want the v1 grant only", rep, err)
	}
	if got := ledger("M-v1", "chk_v1"); !strings.HasPrefix(got, "c2"+sep) {
		t.Fatalf("v1 grant migrated with compact grants off = %q; want a whole check", got)
	}
	if got := ledger("M-whole", wholeID); got != wholeBefore {
		t.Fatalf("whole grant after migrate, compact grants off = %q; want it unchanged, %q", got, wholeBefore)
	}
	if got := ledger("M-compact", compactID); got != compactBefore {
		t.Fatalf("g1 grant after migrate, compact grants off = %q; want it unchanged, %q", got, compactBefore)
	}

	if rep, err := compact.Migrate(ctx, MigrateOptions{}); err != nil || rep.Ledger != 2 || rep.Total() != 2 {
		t.Fatalf("migrate, compact grants on = %+v, %v; want the two whole grants", rep, err)
	}
	for customer, id := range map[string]string{"M-whole": wholeID, "M-compact": compactID, "M-v1": "chk_v1"} {
		if got := ledger(customer, id); !strings.HasPrefix(got, "g1"+sep) {
			t.Errorf("%s's grant after migrate, compact grants on = %q; want g1", customer, got)
		}
	}
}
