package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// v1 runs the scripts of the previous layout (testdata/v1, composed as
// they were deployed: helpers, prelude, body wrapped in main) to fill a
// store the way a deployed Redis holds it.
type v1Store struct {
	tb  testing.TB
	rdb redis.UniversalClient
}

func (v v1Store) run(name, customer string, now time.Time, extraKeys []string, args ...any) []any {
	v.tb.Helper()
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "v1", f))
		if err != nil {
			v.tb.Fatal(err)
		}
		return string(b)
	}
	helpers := ""
	if name == "redeem" {
		helpers = luaTOTP
	}
	src := helpers + read("prelude.lua") + "local function main()\n" + read(name+".lua") + "\nend\nlocal reply = main()\nreturn {EXPIRED, reply}\n"
	p := "arb:{" + customer + "}:"
	keys := append([]string{p + "meta", p + "hold", p + "grants", p + "checks", p + "log", p + "audit", p + "block", p + "rating", p + "tries"}, extraKeys...)
	argv := append([]any{now.UnixMilli(), DefaultAuditCap, DefaultRetention.Milliseconds()}, args...)
	res, err := redis.NewScript(src).Run(context.Background(), v.rdb, keys, argv...).Slice()
	if err != nil {
		v.tb.Fatalf("v1 %s: %v", name, err)
	}
	reply, _ := res[1].([]any)
	return reply
}

var v1Secret = []byte("0123456789abcdefghij")

func (v v1Store) check(customer, product, id string, now time.Time, ttl time.Duration) {
	v.tb.Helper()
	conflicts := map[string]string{"credit_card": "personal_loan", "personal_loan": "credit_card"}[product]
	if r := v.run("check", customer, now, nil, product, 1, conflicts, id, hexOf(v1Secret),
		ttl.Milliseconds(), "branch-portal", "ana", "", 0, 0, "", 0); str(r, 0) != "held" {
		v.tb.Fatalf("v1 check %s: %v", customer, r)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func (v v1Store) redeem(customer, mode, product, id, code string, now time.Time) {
	v.tb.Helper()
	conflicts := map[string]string{"credit_card": "personal_loan", "personal_loan": "credit_card"}[product]
	if r := v.run("redeem", customer, now, nil, mode, product, id, code, "card-service", 1, conflicts, 5, 30, 1, 10, time.Hour.Milliseconds()); str(r, 0) != "granted" {
		v.tb.Fatalf("v1 redeem %s: %v", customer, r)
	}
}

// TestRetiredEncodingsRefused: a value the migration did not rewrite
// fails the script that meets it, naming the migration, rather than being
// read as no check, no grant or no hold (a grant read as none would let a
// conflicting check pass).
func TestRetiredEncodingsRefused(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.MustStartRedis(t).Client(t)
	now := time.Now().Truncate(time.Millisecond)
	old := v1Store{t, rdb}
	s := New(rdb, Options{})
	rule := func(p string) validation.Rule { r, _ := validation.DefaultPolicy().Rule(p); return r }
	hold := func(customer, product string) error {
		_, _, err := s.Hold(ctx, validation.HoldRequest{Rule: rule(product), CustomerID: customer, CheckID: mustID(t, customer),
			Actor: "x", Now: now})
		return err
	}

	// A v1 grant, a v1 live hold (a hash), a v1 hold dropped by its TTL
	// but not settled, a refusal's idempotency record, a v1 event; and a
	// c2 grant written before the token field was added, which is not
	// retired (fields are added at the end, see storedCheck).
	id := mustID(t, "R-grant")
	old.check("R-grant", "credit_card", id, now, 5*time.Minute)
	old.redeem("R-grant", "token", "credit_card", id, "", now)
	old.check("R-hold", "credit_card", mustID(t, "R-hold"), now, 5*time.Minute)
	old.check("R-drop", "credit_card", mustID(t, "R-drop"), now, 5*time.Minute)
	rdb.Del(ctx, "arb:{R-drop}:hold")
	tokenless := "c2" + sep + "chk_x" + sep + "credit_card" + sep + "redeemed" + strings.Repeat(sep, len(checkCodec.fields)-4)
	rdb.HSet(ctx, "arb:{R-tl}:grants", "chk_x", tokenless)
	rdb.Set(ctx, idemKey("R-idem", "k"), `{"req":"body","refused":true}`, time.Hour)

	for _, c := range []struct {
		name string
		call func() error
	}{
		{"a v1 grant", func() error { return hold("R-grant", "personal_loan") }},
		{"a v1 hold", func() error { return hold("R-hold", "personal_loan") }},
		{"a v1 hold to settle", func() error { return hold("R-drop", "credit_card") }},
		{"a refusal's idempotency record", func() error {
			_, _, err := s.Hold(ctx, validation.HoldRequest{Rule: rule("credit_card"), CustomerID: "R-idem", CheckID: mustID(t, "R-idem"),
				Actor: "x", Now: now, IdempotencyKey: "k", RequestHash: "body", IdempotencyTTL: time.Hour})
			return err
		}},
		{"a v1 event", func() error { _, err := s.Audit(ctx, "R-grant", 10, now); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, errRetired) && (err == nil || !strings.Contains(err.Error(), retiredMsg)) {
				t.Fatalf("err = %v; want the script refused, naming the migration", err)
			}
		})
	}
	if g, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "R-tl", Product: "credit_card", Actor: "x", Now: now}); err != nil || g.CheckID != "chk_x" {
		t.Fatalf("release of a grant without the token field = %+v, %v; want it released", g, err)
	}
	if _, err := s.Migrate(ctx, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := hold("R-grant", "personal_loan"); !errors.Is(err, validation.ErrConflictingProduct) {
		t.Fatalf("after the migration: %v, want conflicting_product", err)
	}
}

// TestRetiredRecordLeftToTheMigration: the records' prune runs after the
// script has written (the hold ended, its record put), so a record in a
// retired encoding met there is left for the migration instead of failing
// the script half-way, which would end the hold without its audit events.
func TestRetiredRecordLeftToTheMigration(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.MustStartRedis(t).Client(t)
	now := time.Now().Truncate(time.Millisecond)
	s := New(rdb, Options{})
	rule, _ := validation.DefaultPolicy().Rule("credit_card")
	const customer = "R-prune"
	// One short of a prune once the hold's record is put: records that
	// ended long ago (the prune drops them) and one in v1 JSON.
	names := checkCodec.names()
	old := now.Add(-2 * DefaultRetention).UnixMilli()
	const recordsPruneAt = 64 // lua/prelude.lua's RECORDS_PRUNE_AT
	for i := range recordsPruneAt - 2 {
		f := make([]string, len(names))
		for j, n := range names {
			switch n {
			case "id":
				f[j] = fmt.Sprintf("chk_old%d", i)
			case "product":
				f[j] = "credit_card"
			case "status":
				f[j] = "cancelled"
			case "ended":
				f[j] = strconv.FormatInt(old, 10)
			}
		}
		rdb.HSet(ctx, "arb:{"+customer+"}:checks", f[0], "c2"+sep+strings.Join(f, sep))
	}
	rdb.HSet(ctx, "arb:{"+customer+"}:checks", "chk_v1", `{"id":"chk_v1","product":"credit_card","status":"cancelled","ended":1}`)

	id := mustID(t, customer)
	if _, _, err := s.Hold(ctx, validation.HoldRequest{Rule: rule, CustomerID: customer, CheckID: id, Actor: "x", Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: customer, CheckID: id, Actor: "x", Now: now}); err != nil {
		t.Fatalf("cancel = %v; want the hold cancelled whatever the prune meets", err)
	}
	if n := rdb.HLen(ctx, "arb:{"+customer+"}:checks").Val(); n != 2 {
		t.Errorf("records after the prune = %d, want 2 (the cancelled hold's and the v1 one, left to the migration)", n)
	}
	var types []validation.EventType
	evs, err := s.Audit(ctx, customer, 10, now, validation.EventChecked, validation.EventCancelled)
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if err != nil || !slices.Equal(types, []validation.EventType{validation.EventCancelled, validation.EventChecked}) {
		t.Fatalf("audit = %v, %v; want the hold's checked and cancelled events", types, err)
	}
}
