package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// earlierScript is a script of an earlier release as it was sent:
// testdata/<version>/prelude.lua, then the script's own file.
func earlierScript(tb testing.TB, version, name string) string {
	var src []byte
	for _, f := range []string{"prelude.lua", name + ".lua"} {
		b, err := os.ReadFile(filepath.Join("testdata", version, f))
		if err != nil {
			tb.Fatal(err)
		}
		src = append(src, b...)
	}
	return string(src)
}

// v2Store runs the scripts of the release before the migration
// (testdata/v2), as the instances still serving during an upgrade do.
type v2Store struct {
	tb  testing.TB
	rdb redis.UniversalClient
}

func (v v2Store) run(name, customer string, now time.Time, extra []string, args, reply any) error {
	src := earlierScript(v.tb, "v2", name)
	common := v2CommonArgs{Now: now.UnixMilli(), AuditCap: DefaultAuditCap, Retention: DefaultRetention.Milliseconds(),
		AuditRetention: DefaultAuditRetention.Milliseconds()}
	keys := append(customerKeys(customer)[:len(v2KeyNames)], extra...)
	res, err := redis.NewScript(src).Run(context.Background(), v.rdb, keys,
		argv(argv(nil, common), args)...).Slice()
	if err != nil {
		return err
	}
	if len(res) != 2 {
		return errors.New("v2 " + name + ": malformed reply")
	}
	r, _ := res[1].([]any)
	return decodeReply(reply, r)
}

var conflictsOf = map[string]string{"credit_card": "personal_loan", "personal_loan": "credit_card"}

// v2KeyNames are the customer keys of the v2 release, in its KEYS order
// (today's start the same way).
var v2KeyNames = []string{"meta", "hold", "grants", "checks", "audit", "block", "rating", "tries", "case"}

// The arguments of the v2 scripts, as that release declared them.
type (
	v2CommonArgs struct {
		Now            int64 `lua:"NOW,num,raw=NOW_STR"`
		AuditCap       int   `lua:"AUDIT_CAP,num"`
		Retention      int64 `lua:"RETENTION,num,raw=RETENTION_STR"`
		AuditRetention int64 `lua:"AUDIT_RETENTION,num,raw=AUDIT_RETENTION_STR"`
	}
	v2CheckArgs struct {
		Product   string `lua:"product"`
		Max       int    `lua:"max,num"`
		Conflicts string `lua:"conflicts"`
		ID        string `lua:"id"`
		Secret    string `lua:"secret"`
		Token     string `lua:"token"`
		TTL       int64  `lua:"ttl,num,raw=ttl_str"`
		Actor     string `lua:"actor"`
		Agent     string `lua:"agent"`
		ReqHash   string `lua:"req_hash"`
		IdemTTL   int64  `lua:"idem_ttl,num,raw=idem_ttl_str"`
		MinRating int    `lua:"min_rating,num"`
		ScoreArg  string `lua:"score_arg"`
		RatingTTL int64  `lua:"rating_ttl,num"`
	}
	v2RedeemTokenArgs struct {
		Product   string `lua:"product"`
		ID        string `lua:"id"`
		Actor     string `lua:"actor"`
		Max       int    `lua:"max,num"`
		Conflicts string `lua:"conflicts"`
		Token     string `lua:"token"`
	}
	v2ReleaseArgs struct {
		Product string `lua:"product"`
		Actor   string `lua:"actor"`
		Want    string `lua:"want"`
	}
)

// server is a release's check, redemption and release, as its scripts
// answer them.
type server interface {
	check(customer, product, id, token string, now time.Time, ttl time.Duration) (checkReply, error)
	redeem(customer, product, id string, now time.Time) (redeemReply, error)
	release(customer, product string, now time.Time) (grantReply, error)
}

// todayStore runs this release's scripts with the v2 policy (each product
// at most once, the two exclusive).
type todayStore struct{ s *Store }

var todayRules = map[string]string{
	"credit_card":   "L|p|1|credit_card|credit_card;L|x|1|cards_loans|personal_loan",
	"personal_loan": "L|p|1|personal_loan|personal_loan;L|x|1|cards_loans|credit_card",
}

func (v todayStore) check(customer, product, id, token string, now time.Time, ttl time.Duration) (checkReply, error) {
	var r checkReply
	err := v.s.run(context.Background(), checkScript, customer, now, nil, checkArgs{Product: product, Rules: todayRules[product], ID: id,
		Secret: hexOf(v1Secret), Token: token, TTL: ttl.Milliseconds(), Actor: "branch-portal", Agent: "ana"}, &r)
	return r, err
}

func (v todayStore) redeem(customer, product, id string, now time.Time) (redeemReply, error) {
	var r redeemReply
	err := v.s.run(context.Background(), redeemTokenScript, customer, now, nil, redeemTokenArgs{Product: product, ID: id,
		Actor: "card-service", Rules: todayRules[product]}, &r)
	return r, err
}

func (v todayStore) release(customer, product string, now time.Time) (grantReply, error) {
	var r grantReply
	err := v.s.run(context.Background(), releaseScript, customer, now, nil, releaseArgs{Product: product, Actor: "card-service"}, &r)
	return r, err
}

// check places a hold of product, or says why not (the reply's kind).
func (v v2Store) check(customer, product, id, token string, now time.Time, ttl time.Duration) (checkReply, error) {
	var r checkReply
	err := v.run("check", customer, now, nil, v2CheckArgs{Product: product, Max: 1, Conflicts: conflictsOf[product], ID: id,
		Secret: hexOf(v1Secret), Token: token, TTL: ttl.Milliseconds(), Actor: "branch-portal", Agent: "ana"}, &r)
	return r, err
}

func (v v2Store) redeem(customer, product, id string, now time.Time) (redeemReply, error) {
	var r redeemReply
	err := v.run("redeem", customer, now, nil, v2RedeemTokenArgs{Product: product, ID: id, Actor: "card-service", Max: 1,
		Conflicts: conflictsOf[product]}, &r)
	return r, err
}

func (v v2Store) release(customer, product string, now time.Time) (grantReply, error) {
	var r grantReply
	err := v.run("release", customer, now, nil, v2ReleaseArgs{Product: product, Actor: "card-service"}, &r)
	return r, err
}

// get is what the previous release answers for a check.
func (v v2Store) get(customer, id string, now time.Time) validation.Check {
	v.tb.Helper()
	var r checkOpReply
	if err := v.run("get", customer, now, nil, idArgs{ID: id}, &r); err != nil {
		v.tb.Fatalf("v2 get %s: %v", id, err)
	}
	if r.Check == "" {
		return validation.Check{}
	}
	c, err := decodeCheck(customer, r.Check)
	if err != nil {
		v.tb.Fatal(err)
	}
	return c
}

func mustID(tb testing.TB, customer string) string {
	tb.Helper()
	id, err := validation.NewCheckID(customer)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// legacyFill is a store as the releases before this one left it: each
// field a customer and the id of one of its checks.
type legacyFill struct {
	held, otp, tok, code, rel, imported, dropped, expiring string // v1
	lastv, tokenless, tokenlessHold                        string // v2, then rewritten as older v2 wrote them
	checks                                                 [][2]string
	code6                                                  string
}

// fillLegacy writes every retired encoding: v1 holds (live, expiring,
// dropped unsettled), JSON grants, records, events and a refusal's
// idempotency record, meta's lastv, c2 values without the token field.
func fillLegacy(t *testing.T, rdb redis.UniversalClient, now time.Time) legacyFill {
	ctx := context.Background()
	old, v2 := v1Store{t, rdb}, v2Store{t, rdb}
	var f legacyFill
	id := func(customer string, dst *string) string {
		*dst = mustID(t, customer)
		f.checks = append(f.checks, [2]string{customer, *dst})
		return *dst
	}
	code, _, err := tokens.OTPCode(v1Secret, now)
	if err != nil {
		t.Fatal(err)
	}
	f.code6 = code

	old.check("L-held", "credit_card", id("L-held", &f.held), now, 5*time.Minute)
	// A refused check's attempt (JSON in tries) and, beside it, the
	// refusal's idempotency record of the versions before v1.
	if r := old.run("check", "L-held", now, nil, "personal_loan", 1, "credit_card", mustID(t, "L-held"), hexOf(v1Secret),
		300000, "loan-service", "", "", 0, 0, "", 0); str(r, 0) != "refused" {
		t.Fatalf("v1 competing check: %v", r)
	}
	if err := rdb.Set(ctx, idemKey("L-held", "k-refused"), `{"req":"body","refused":true}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	old.check("L-otp", "credit_card", id("L-otp", &f.otp), now, 5*time.Minute)
	old.check("L-tok", "credit_card", id("L-tok", &f.tok), now, 5*time.Minute)
	old.redeem("L-tok", "token", "credit_card", f.tok, "", now)
	old.check("L-code", "credit_card", id("L-code", &f.code), now, 5*time.Minute)
	old.redeem("L-code", "otp", "credit_card", "", code, now)
	old.check("L-rel", "credit_card", id("L-rel", &f.rel), now, 5*time.Minute)
	old.redeem("L-rel", "token", "credit_card", f.rel, "", now)
	if r := old.run("release", "L-rel", now, nil, "credit_card", "card-service", ""); str(r, 0) != "ok" {
		t.Fatalf("v1 release: %v", r)
	}
	if r := old.run("import", "L-imp", now, nil, "personal_loan", 1, "credit_card", id("L-imp", &f.imported), "loan-service",
		now.UnixMilli()); str(r, 0) != "ok" {
		t.Fatalf("v1 import: %v", r)
	}
	// Not in f.checks: reading it before the migration would settle it.
	f.dropped = mustID(t, "L-drop")
	old.check("L-drop", "credit_card", f.dropped, now, 200*time.Millisecond)
	old.check("L-exp", "credit_card", id("L-exp", &f.expiring), now, 2*time.Second)

	// v2: a live hold whose meta keeps lastv (the v2 release before the
	// shadow), a grant and a live hold written before the token field.
	for _, c := range []struct {
		customer string
		dst      *string
	}{{"V-lastv", &f.lastv}, {"V-tl", &f.tokenless}, {"V-tlh", &f.tokenlessHold}} {
		if r, err := v2.check(c.customer, "credit_card", id(c.customer, c.dst), "", now, 5*time.Minute); err != nil || r.Kind != "held" {
			t.Fatalf("v2 check %s = %+v, %v", c.customer, r, err)
		}
	}
	asLastv(t, rdb, "V-lastv")
	if r, err := v2.redeem("V-tl", "credit_card", f.tokenless, now); err != nil || r.Kind != "granted" {
		t.Fatalf("v2 redeem = %+v, %v", r, err)
	}
	withoutToken := func(key, field string) {
		var raw string
		if field == "" {
			raw = rdb.Get(ctx, key).Val()
		} else {
			raw = rdb.HGet(ctx, key, field).Val()
		}
		if !strings.HasSuffix(raw, sep) {
			t.Fatalf("%s %s = %q: want an empty token last", key, field, raw)
		}
		raw = strings.TrimSuffix(raw, sep)
		if field == "" {
			err = rdb.Set(ctx, key, raw, redis.KeepTTL).Err()
		} else {
			err = rdb.HSet(ctx, key, field, raw).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	withoutToken("arb:{V-tl}:grants", f.tokenless)
	withoutToken("arb:{V-tlh}:hold", "")

	// The dropped v1 hold is gone before the migration (Redis's own TTL is
	// the subject), with no script run since to settle it.
	for rdb.Exists(ctx, "arb:{L-drop}:hold").Val() == 1 {
		time.Sleep(20 * time.Millisecond)
	}
	return f
}

// asLastv rewrites customer's meta as the v2 release before the shadow
// left it after placing its hold: open, lastv (the hold without its
// secret), no h.<field>.
func asLastv(tb testing.TB, rdb redis.UniversalClient, customer string) {
	tb.Helper()
	ctx := context.Background()
	p := "arb:{" + customer + "}:"
	f := strings.Split(rdb.Get(ctx, p+"hold").Val(), sep)
	if checkCodec.names()[8] != "secret" {
		tb.Fatal("storedCheck moved the secret; fix the test's copy")
	}
	f[1+8] = ""
	shadow := make([]string, len(checkCodec.heldNames()))
	for i, name := range checkCodec.heldNames() {
		shadow[i] = "h." + name
	}
	if err := rdb.HDel(ctx, p+"meta", shadow...).Err(); err != nil {
		tb.Fatal(err)
	}
	if err := rdb.HSet(ctx, p+"meta", "open", "1", "lastv", strings.Join(f, sep)).Err(); err != nil {
		tb.Fatal(err)
	}
}

// retired counts the values in rdb (every master of a cluster) that are in
// a retired encoding, by key and field, independently of migrate.lua.
// wholeGrants counts the ledger's whole-check (c2) grants.
func wholeGrants(tb testing.TB, rdb redis.UniversalClient) int {
	tb.Helper()
	var (
		mu sync.Mutex
		n  int
	)
	scan := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, "arb:{*}:grants", 100).Iterator()
		for iter.Next(ctx) {
			for _, v := range node.HGetAll(ctx, iter.Val()).Val() {
				if strings.HasPrefix(v, "c2"+sep) {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
		}
		return iter.Err()
	}
	ctx := context.Background()
	if err := eachMaster(ctx, rdb, func(ctx context.Context, node redis.Cmdable, _ string) error { return scan(ctx, node) }); err != nil {
		tb.Fatal(err)
	}
	return n
}

func retired(tb testing.TB, rdb redis.UniversalClient) []string {
	tb.Helper()
	ctx := context.Background()
	var (
		mu    sync.Mutex // ForEachMaster scans the masters at once
		found []string
	)
	bad := func(key, what string) {
		mu.Lock()
		defer mu.Unlock()
		found = append(found, key+" "+what)
	}
	check := func(key, field, v string) {
		if strings.HasPrefix(v, "{") || strings.Count(v, sep) < tokenFields || !strings.HasPrefix(v, "c2"+sep) {
			bad(key, field)
		}
	}
	scan := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, "arb:{*", 100).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			_, name, _ := strings.Cut(key, "}:")
			switch {
			case name == "hold":
				if t := rdb.Type(ctx, key).Val(); t != "string" {
					bad(key, t)
				} else {
					check(key, "", rdb.Get(ctx, key).Val())
				}
			case name == "checks":
				for field, v := range rdb.HGetAll(ctx, key).Val() {
					check(key, field, v)
				}
			case name == "grants":
				// The ledger keeps grants (g1), not whole checks.
				for field, v := range rdb.HGetAll(ctx, key).Val() {
					if !strings.HasPrefix(v, "g1"+sep) {
						bad(key, field)
					}
				}
			case name == "audit" || name == "tries":
				for _, v := range rdb.LRange(ctx, key, 0, -1).Val() {
					if !strings.HasPrefix(v, "e2"+sep) {
						bad(key, v)
					}
				}
			case name == "meta":
				for field, v := range rdb.HGetAll(ctx, key).Val() {
					switch field {
					case "lastv", "last_product", "last_expires", "last_fence":
						bad(key, field)
					case "open":
						if v != "1" {
							bad(key, "open "+v)
						}
					}
				}
			case name == "log":
				bad(key, "")
			case strings.HasPrefix(name, "idem:"):
				if !strings.Contains(rdb.Get(ctx, key).Val(), `"check_id"`) {
					bad(key, "")
				}
			}
		}
		return iter.Err()
	}
	if err := eachMaster(ctx, rdb, func(ctx context.Context, node redis.Cmdable, _ string) error { return scan(ctx, node) }); err != nil {
		tb.Fatal(err)
	}
	return found
}

var migrateBackends = map[string]func(testing.TB) redis.UniversalClient{
	"redis":   func(tb testing.TB) redis.UniversalClient { return redistest.MustStartRedis(tb).Client(tb) },
	"cluster": func(tb testing.TB) redis.UniversalClient { return redistest.MustStartCluster(tb).Client(tb) },
}

// TestMigrate fills a store with what the releases before this one wrote,
// migrates it, and runs today's Store on it: every value is in the
// current encoding, a second run converts nothing, and the answers are
// the ones the previous release gave on the old data.
func TestMigrate(t *testing.T) {
	for name, start := range migrateBackends {
		t.Run(name, func(t *testing.T) {
			testMigrate(t, start(t))
		})
	}
}

func testMigrate(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	f := fillLegacy(t, rdb, now)
	v2 := v2Store{t, rdb}
	before := map[string]validation.Check{}
	for _, c := range f.checks {
		before[c[1]] = v2.get(c[0], c[1], now)
	}
	holdTTL := rdb.PTTL(ctx, "arb:{L-held}:hold").Val()
	s := New(rdb, Options{CompactGrants: true}) // to g1; cmd/arbiter's TestMigrateCommand migrates with it off

	old := retired(t, rdb)
	dry, err := s.Migrate(ctx, MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := retired(t, rdb); len(got) != len(old) || len(old) == 0 {
		t.Fatalf("retired values %d before a dry run, %d after; want the same, some", len(old), len(got))
	}
	var progress []MigrateProgress
	rep, err := s.Migrate(ctx, MigrateOptions{Batch: 10, Progress: func(p MigrateProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.MigrateCounts != dry.MigrateCounts {
		t.Fatalf("migrated %+v, the dry run counted %+v", rep.MigrateCounts, dry.MigrateCounts)
	}
	t.Logf("migrated %+v", rep)
	if rep.Holds != 4 || rep.Grants != 3 || rep.Tokenless != 2 || rep.Lastv != 1 || rep.Idem != 1 || rep.Logs == 0 ||
		rep.Events == 0 || rep.Checks == 0 || rep.Meta == 0 {
		t.Fatalf("migrated %+v; want every kind", rep.MigrateCounts)
	}
	if len(progress) == 0 || progress[len(progress)-1].Report != rep {
		t.Fatalf("progress %+v does not end with the report %+v", progress, rep)
	}
	if left := retired(t, rdb); len(left) > 0 {
		t.Fatalf("retired values after the migration: %v", left)
	}
	if again, err := s.Migrate(ctx, MigrateOptions{}); err != nil || again.Total() != 0 {
		t.Fatalf("second run = %+v, %v; want nothing converted", again, err)
	}
	if ttl := rdb.PTTL(ctx, "arb:{L-held}:hold").Val(); ttl <= 0 || ttl > holdTTL {
		t.Fatalf("the migrated hold's TTL is %v, was %v", ttl, holdTTL)
	}

	t.Run("every check reads as the previous release read it", func(t *testing.T) {
		for _, c := range f.checks {
			got, err := s.Check(ctx, c[0], c[1], now)
			if errors.Is(err, validation.ErrCheckNotFound) {
				got, err = validation.Check{}, nil
			}
			if want := before[c[1]]; err != nil || !sameCheck(got, want) {
				t.Errorf("%s %s = %+v, %v\nwant %+v", c[0], c[1], got, err, want)
			}
		}
	})
	migratedAnswers(t, s, rdb, f, now)
}

// sameCheck compares checks field by field (times by instant).
func sameCheck(a, b validation.Check) bool {
	return a.ID == b.ID && a.CustomerID == b.CustomerID && a.Product == b.Product && a.Status == b.Status &&
		a.Fence == b.Fence && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.PlacedBy == b.PlacedBy && a.AgentID == b.AgentID && a.RedeemedBy == b.RedeemedBy &&
		a.GrantedAt.Equal(b.GrantedAt) && a.EndedAt.Equal(b.EndedAt) && a.EndedBy == b.EndedBy &&
		a.EndReason == b.EndReason && string(a.Secret) == string(b.Secret)
}

// migratedAnswers runs today's Store on fillLegacy's store once migrated:
// live holds are redeemed, refused and read, grants refuse and replay,
// expiries settle, fences keep growing, each as the previous release
// answered on the old data.
func migratedAnswers(t *testing.T, s *Store, rdb redis.UniversalClient, f legacyFill, now time.Time) {
	ctx := context.Background()
	rule := func(p string) validation.Rule { r, _ := validation.DefaultPolicy().Rule(p); return r }
	redeem := func(customer, checkID, code, actor string) (validation.Grant, bool, error) {
		return s.Redeem(ctx, validation.RedeemRequest{Rule: rule("credit_card"), CustomerID: customer, CheckID: checkID, Code: code,
			Actor: actor, Now: now.Add(time.Second), MaxAttempts: 5})
	}
	reason := func(err error) validation.Reason {
		var e *validation.Error
		if errors.As(err, &e) {
			return e.Reason
		}
		return ""
	}
	hold := func(customer, product string, at time.Time) (validation.Check, error) {
		c, _, err := s.Hold(ctx, validation.HoldRequest{Rule: rule(product), CustomerID: customer, CheckID: mustID(t, customer),
			Secret: v1Secret, Actor: "x", Now: at})
		return c, err
	}
	otherCode := "000000"
	if otherCode == f.code6 {
		otherCode = "111111"
	}

	t.Run("a v1 live hold reads held, refuses, and redeems by token", func(t *testing.T) {
		c, err := s.Check(ctx, "L-held", f.held, now)
		if err != nil || c.Status != validation.StatusHeld || string(c.Secret) != string(v1Secret) || c.PlacedBy != "branch-portal" {
			t.Fatalf("check = %+v, %v", c, err)
		}
		if _, err := hold("L-held", "personal_loan", now); reason(err) != validation.ReasonHoldExists {
			t.Fatalf("competing check: %v, want hold_exists", err)
		}
		g, replayed, err := redeem("L-held", f.held, "", "card-service")
		if err != nil || replayed || g.CheckID != f.held || g.Fence != c.Fence {
			t.Fatalf("redeem = %+v %v %v", g, replayed, err)
		}
		if _, replayed, err := redeem("L-held", f.held, "", "card-service"); err != nil || !replayed {
			t.Fatalf("replay = %v %v", replayed, err)
		}
		evs, err := s.Audit(ctx, "L-held", 10, now.Add(time.Second), validation.EventChecked, validation.EventRedeemed)
		if err != nil || len(evs) != 2 || evs[0].Type != validation.EventRedeemed || evs[1].Type != validation.EventChecked {
			t.Fatalf("audit = %+v, %v; want redeemed after one checked", evs, err)
		}
		tries, err := s.Audit(ctx, "L-held", 10, now.Add(time.Second), validation.EventRefused)
		if err != nil || len(tries) != 2 || tries[1].Actor != "loan-service" || tries[1].Reasons[0] != validation.ReasonHoldExists {
			t.Fatalf("attempts = %+v, %v; want the v1 refusal, then this test's", tries, err)
		}
	})
	t.Run("a v1 live hold redeems by OTP, its wrong codes counted", func(t *testing.T) {
		if _, _, err := redeem("L-otp", "", otherCode, "card-service"); reason(err) != validation.ReasonOTPInvalid {
			t.Fatalf("wrong code: %v", err)
		}
		if g, _, err := redeem("L-otp", "", f.code6, "card-service"); err != nil || g.CheckID != f.otp {
			t.Fatalf("otp redeem = %+v, %v", g, err)
		}
	})
	t.Run("a v1 grant refuses, replays and releases", func(t *testing.T) {
		cust, err := s.Customer(ctx, "L-tok", now)
		if err != nil || len(cust.Grants) != 1 || cust.Grants[0].CheckID != f.tok || cust.Grants[0].RedeemedBy != "card-service" {
			t.Fatalf("customer = %+v, %v", cust, err)
		}
		if _, err := hold("L-tok", "personal_loan", now); reason(err) != validation.ReasonConflictingProduct {
			t.Fatalf("conflicting check: %v", err)
		}
		if _, replayed, err := redeem("L-tok", f.tok, "", "card-service"); err != nil || !replayed {
			t.Fatalf("replay = %v %v", replayed, err)
		}
		if _, _, err := redeem("L-tok", f.tok, "", "loan-service"); reason(err) != validation.ReasonAlreadyRedeemed {
			t.Fatalf("other redeemer: %v", err)
		}
		if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "L-tok", Product: "credit_card", Actor: "card-service", Now: now}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := redeem("L-tok", f.tok, "", "card-service"); reason(err) != validation.ReasonGrantReleased {
			t.Fatalf("replay of a released v1 grant: %v", err)
		}
		c, err := hold("L-tok", "personal_loan", now)
		if err != nil || c.Fence <= cust.Grants[0].Fence {
			t.Fatalf("new check = %+v, %v; want a fence above the v1 %d", c, err, cust.Grants[0].Fence)
		}
	})
	t.Run("a v1 grant released by v1 replays as released", func(t *testing.T) {
		if _, _, err := redeem("L-rel", f.rel, "", "card-service"); reason(err) != validation.ReasonGrantReleased {
			t.Fatalf("replay: %v", err)
		}
	})
	t.Run("a v1 imported grant refuses and is no check", func(t *testing.T) {
		if _, err := hold("L-imp", "credit_card", now); reason(err) != validation.ReasonConflictingProduct {
			t.Fatalf("conflicting check: %v", err)
		}
		if _, err := s.Check(ctx, "L-imp", f.imported, now); reason(err) != validation.ReasonCheckNotFound {
			t.Fatalf("check of an import: %v", err)
		}
	})
	t.Run("a v1 OTP grant replays with its code only", func(t *testing.T) {
		if _, replayed, err := redeem("L-code", "", f.code6, "card-service"); err != nil || !replayed {
			t.Fatalf("replay = %v %v", replayed, err)
		}
		if _, _, err := redeem("L-code", "", otherCode, "card-service"); reason(err) != validation.ReasonOTPInvalid {
			t.Fatalf("replay with another code: %v", err)
		}
	})
	expired := func(t *testing.T, customer, id string, at time.Time) {
		t.Helper()
		c, err := s.Check(ctx, customer, id, at)
		if err != nil || c.Status != validation.StatusExpired {
			t.Fatalf("check = %+v, %v", c, err)
		}
		evs, err := s.Audit(ctx, customer, 10, at)
		if err != nil || len(evs) != 2 || evs[0].Type != validation.EventExpired || evs[1].Type != validation.EventChecked {
			t.Fatalf("audit = %+v, %v; want expired, checked", evs, err)
		}
		n, err := hold(customer, "credit_card", at)
		if err != nil || n.Fence <= c.Fence {
			t.Fatalf("new check = %+v, %v", n, err)
		}
	}
	t.Run("a v1 hold dropped before the migration settles", func(t *testing.T) {
		expired(t, "L-drop", f.dropped, now.Add(3*time.Second))
	})
	t.Run("a v1 hold dropped after the migration settles", func(t *testing.T) {
		for rdb.Exists(ctx, "arb:{L-exp}:hold").Val() == 1 {
			time.Sleep(20 * time.Millisecond) // Redis's own clock is the subject
		}
		expired(t, "L-exp", f.expiring, now.Add(3*time.Second))
	})
	t.Run("a hold copied to lastv settles whole", func(t *testing.T) {
		h := holdValue(t, rdb, "V-lastv")
		h.Secret = ""
		wantSettledFrom(t, settled(t, s, rdb, "V-lastv", f.lastv, now), h)
	})
	t.Run("values without the token field read with it empty", func(t *testing.T) {
		if _, replayed, err := redeem("V-tl", f.tokenless, "", "card-service"); err != nil || !replayed {
			t.Fatalf("replay of a grant without token = %v, %v", replayed, err)
		}
		if g, _, err := redeem("V-tlh", f.tokenlessHold, "", "card-service"); err != nil || g.CheckID != f.tokenlessHold {
			t.Fatalf("redeem of a hold without token = %+v, %v", g, err)
		}
	})
}

// TestMigrateWhileServing runs the upgrade to compact grants in its order:
// the previous release (v2 scripts) serves, then this release with compact
// grants off serves beside it (each reads the other's grants), then this
// release with compact grants on serves while the migration runs (v1 holds
// among the customers): no script fails, nothing is left in a retired
// encoding, and no customer ends with two exclusive grants.
func TestMigrateWhileServing(t *testing.T) {
	for name, start := range migrateBackends {
		t.Run(name, func(t *testing.T) {
			testMigrateWhileServing(t, start(t))
		})
	}
}

func testMigrateWhileServing(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	old, v2 := v1Store{t, rdb}, v2Store{t, rdb}
	customers := make([]string, 60)
	for i := range customers {
		customers[i] = "S-" + strconv.Itoa(i)
		id := mustID(t, customers[i])
		old.check(customers[i], "credit_card", id, now, 5*time.Minute)
		if i%2 == 0 {
			old.redeem(customers[i], "token", "credit_card", id, "", now)
		}
	}

	// serve is one round of srv's traffic on customer: a check of product;
	// the hold it places or meets is redeemed, the grant it meets
	// released.
	serve := func(srv server, customer, product string) error {
		id := mustID(t, customer)
		r, err := srv.check(customer, product, id, "", now, 5*time.Minute)
		if err != nil {
			return fmt.Errorf("v2 check %s: %w", customer, err)
		}
		if r.Kind == "refused" {
			var vs []struct {
				Reason, Product string
				CheckID         string `json:"check_id"`
			}
			if err := json.Unmarshal([]byte(r.Violations), &vs); err != nil {
				return err
			}
			id = ""
			for _, v := range vs {
				if v.Reason == "hold_exists" {
					id, product = v.CheckID, v.Product
				}
			}
			if id == "" {
				rel, err := srv.release(customer, vs[0].Product, now)
				if err != nil || rel.Kind != "ok" {
					return fmt.Errorf("v2 release %s = %+v, %v", customer, rel, err)
				}
				return nil
			}
		} else if r.Kind != "held" {
			return fmt.Errorf("v2 check %s = %+v", customer, r)
		}
		g, err := srv.redeem(customer, product, id, now)
		if err != nil || (g.Kind != "granted" && g.Kind != "refused") {
			return fmt.Errorf("v2 redeem %s %s = %+v, %v", customer, id, g, err)
		}
		return nil
	}

	// The upgrade in its order (operations.md): a round of the release
	// that retired v1 first (v2; the migration below converts what it
	// left). Then this release is deployed with compact grants off, the
	// default, and serves beside the previous release (v3), customer by
	// customer in turn, twice, so that each meets (checks against,
	// releases) the other's grants: the previous release reads what this
	// one writes with compact grants off. Then compact
	// grants are switched on and the migration runs while this release
	// serves, writing g1 grants, which the previous release cannot read.
	products := [...]string{"personal_loan", "credit_card"}
	for i, c := range customers {
		if err := serve(v2, c, products[i%2]); err != nil {
			t.Fatalf("the v2 release: %v", err)
		}
	}
	prev, whole := v3Store{t, rdb}, todayStore{New(rdb, Options{})}
	for round := range 2 {
		for i, c := range customers {
			srv, who := server(prev), "the previous release"
			if (round+i)%2 == 0 {
				srv, who = whole, "this release, compact grants off"
			}
			if err := serve(srv, c, products[(round+i+1)%2]); err != nil {
				t.Fatalf("%s, beside the other: %v", who, err)
			}
		}
	}
	if n := wholeGrants(t, rdb); n == 0 {
		t.Fatal("no whole grant before the switch: the rolling deploy wrote none")
	}
	s := New(rdb, Options{CompactGrants: true})
	today := todayStore{s}
	stop, served := make(chan struct{}), make(chan error, 1)
	started := make(chan struct{})
	go func() {
		for round := 1; ; round++ {
			for i, c := range customers {
				if err := serve(today, c, products[(round+i)%2]); err != nil {
					served <- err
					return
				}
				if round == 1 && i == 0 {
					close(started)
				}
			}
			select {
			case <-stop:
				served <- nil
				return
			default:
			}
		}
	}()
	<-started
	rep, err := s.Migrate(ctx, MigrateOptions{Batch: 5})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("this release, serving during the migration: %v", err)
	}
	t.Logf("migrated while serving: %+v", rep)
	if left := retired(t, rdb); len(left) > 0 {
		t.Fatalf("retired values after the migration: %v", left)
	}
	if again, err := s.Migrate(ctx, MigrateOptions{}); err != nil || again.Total() != 0 {
		t.Fatalf("second run = %+v, %v; want nothing converted", again, err)
	}
	for _, c := range customers {
		cust, err := s.Customer(ctx, c, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(cust.Grants) > 1 {
			t.Errorf("%s holds %+v", c, cust.Grants)
		}
		if _, err := s.Audit(ctx, c, 100, now); err != nil {
			t.Fatal(err)
		}
	}
}
