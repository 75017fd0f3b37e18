package redisstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/tokens"
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

// TestLegacyLayout fills a store with the previous layout (hash holds,
// JSON checks, grants and events, counter fences) and runs today's Store
// on it: live holds are redeemed, refused and read, grants refuse and
// replay, expiries settle, fences keep growing.
func TestLegacyLayout(t *testing.T) {
	backends := map[string]func(testing.TB) (redis.UniversalClient, func()){
		"redis": func(tb testing.TB) (redis.UniversalClient, func()) {
			rdb := redistest.MustStartRedis(tb).Client(tb)
			return rdb, func() {
				for rdb.Exists(context.Background(), "arb:{L-exp}:hold").Val() == 1 {
					time.Sleep(20 * time.Millisecond) // Redis's own clock is the subject
				}
			}
		},
		"miniredis": func(tb testing.TB) (redis.UniversalClient, func()) {
			mr := redistest.MustStartMiniredis(tb)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			tb.Cleanup(func() { rdb.Close() })
			return rdb, func() { mr.FastForward(2 * time.Second) }
		},
	}
	for name, start := range backends {
		t.Run(name, func(t *testing.T) {
			rdb, expire := start(t)
			testLegacyLayout(t, rdb, expire)
		})
	}
}

func testLegacyLayout(t *testing.T, rdb redis.UniversalClient, expire func()) {
	ctx := context.Background()
	old := v1Store{t, rdb}
	now := time.Now().Truncate(time.Millisecond)
	id := func(c string) string {
		s, err := validation.NewCheckID(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	policy := validation.DefaultPolicy()
	rule := func(p string) validation.Rule { r, _ := policy.Rule(p); return r }
	code, _, err := tokens.OTPCode(v1Secret, now)
	if err != nil {
		t.Fatal(err)
	}

	// The v1 data: a live hold (L-held), a live hold for OTP (L-otp), a
	// token grant (L-tok), an OTP grant (L-code), an expiring hold (L-exp).
	held, otpHeld, tok, codeID, exp := id("L-held"), id("L-otp"), id("L-tok"), id("L-code"), id("L-exp")
	old.check("L-held", "credit_card", held, now, 5*time.Minute)
	old.check("L-otp", "credit_card", otpHeld, now, 5*time.Minute)
	old.check("L-tok", "credit_card", tok, now, 5*time.Minute)
	old.redeem("L-tok", "token", "credit_card", tok, "", now)
	old.check("L-code", "credit_card", codeID, now, 5*time.Minute)
	old.redeem("L-code", "otp", "credit_card", "", code, now)
	old.check("L-exp", "credit_card", exp, now, time.Second)

	s := New(rdb, Options{})
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

	t.Run("a v1 live hold reads held, refuses, and redeems by token", func(t *testing.T) {
		c, err := s.Check(ctx, "L-held", held, now)
		if err != nil || c.Status != validation.StatusHeld || string(c.Secret) != string(v1Secret) || c.PlacedBy != "branch-portal" {
			t.Fatalf("check = %+v, %v", c, err)
		}
		_, _, err = s.Hold(ctx, validation.HoldRequest{Rule: rule("personal_loan"), CustomerID: "L-held", CheckID: id("L-held"),
			Secret: v1Secret, Actor: "loan-service", Now: now})
		if reason(err) != validation.ReasonHoldExists {
			t.Fatalf("competing check: %v, want hold_exists", err)
		}
		g, replayed, err := redeem("L-held", held, "", "card-service")
		if err != nil || replayed || g.CheckID != held || g.Fence != c.Fence {
			t.Fatalf("redeem = %+v %v %v", g, replayed, err)
		}
		if _, replayed, err := redeem("L-held", held, "", "card-service"); err != nil || !replayed {
			t.Fatalf("replay = %v %v", replayed, err)
		}
		evs, err := s.Audit(ctx, "L-held", 10, now.Add(time.Second), validation.EventChecked, validation.EventRedeemed)
		if err != nil || len(evs) != 2 || evs[0].Type != validation.EventRedeemed || evs[1].Type != validation.EventChecked {
			t.Fatalf("audit = %+v, %v; want redeemed after the v1 checked", evs, err)
		}
	})
	t.Run("a v1 live hold redeems by OTP, its wrong codes counted", func(t *testing.T) {
		bad := "000000"
		if bad == code {
			bad = "111111"
		}
		_, _, err := redeem("L-otp", "", bad, "card-service")
		if reason(err) != validation.ReasonOTPInvalid {
			t.Fatalf("wrong code: %v", err)
		}
		if g, _, err := redeem("L-otp", "", code, "card-service"); err != nil || g.CheckID != otpHeld {
			t.Fatalf("otp redeem = %+v, %v", g, err)
		}
	})
	t.Run("a v1 grant refuses, replays and releases", func(t *testing.T) {
		cust, err := s.Customer(ctx, "L-tok", now)
		if err != nil || len(cust.Grants) != 1 || cust.Grants[0].CheckID != tok || cust.Grants[0].RedeemedBy != "card-service" {
			t.Fatalf("customer = %+v, %v", cust, err)
		}
		_, _, err = s.Hold(ctx, validation.HoldRequest{Rule: rule("personal_loan"), CustomerID: "L-tok", CheckID: id("L-tok"), Actor: "x", Now: now})
		if reason(err) != validation.ReasonConflictingProduct {
			t.Fatalf("conflicting check: %v", err)
		}
		if _, replayed, err := redeem("L-tok", tok, "", "card-service"); err != nil || !replayed {
			t.Fatalf("replay = %v %v", replayed, err)
		}
		if _, _, err := redeem("L-tok", tok, "", "loan-service"); reason(err) != validation.ReasonAlreadyRedeemed {
			t.Fatalf("other redeemer: %v", err)
		}
		if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "L-tok", Product: "credit_card", Actor: "card-service", Now: now}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := redeem("L-tok", tok, "", "card-service"); reason(err) != validation.ReasonGrantReleased {
			t.Fatalf("replay of a released v1 grant: %v", err)
		}
		c, _, err := s.Hold(ctx, validation.HoldRequest{Rule: rule("personal_loan"), CustomerID: "L-tok", CheckID: id("L-tok"), Actor: "x", Now: now})
		if err != nil || c.Fence <= cust.Grants[0].Fence {
			t.Fatalf("new check = %+v, %v; want a fence above the v1 %d", c, err, cust.Grants[0].Fence)
		}
	})
	t.Run("a v1 OTP grant replays with its code only", func(t *testing.T) {
		if _, replayed, err := redeem("L-code", "", code, "card-service"); err != nil || !replayed {
			t.Fatalf("replay = %v %v", replayed, err)
		}
		other := "000000"
		if other == code {
			other = "111111"
		}
		if _, _, err := redeem("L-code", "", other, "card-service"); reason(err) != validation.ReasonOTPInvalid {
			t.Fatalf("replay with another code: %v", err)
		}
	})
	t.Run("a v1 hold's expiry is settled", func(t *testing.T) {
		expire()
		later := now.Add(3 * time.Second)
		c, err := s.Check(ctx, "L-exp", exp, later)
		if err != nil || c.Status != validation.StatusExpired {
			t.Fatalf("check = %+v, %v", c, err)
		}
		evs, err := s.Audit(ctx, "L-exp", 10, later)
		if err != nil || len(evs) != 2 || evs[0].Type != validation.EventExpired || evs[1].Type != validation.EventChecked {
			t.Fatalf("audit = %+v, %v; want expired, checked", evs, err)
		}
		n, _, err := s.Hold(ctx, validation.HoldRequest{Rule: rule("credit_card"), CustomerID: "L-exp", CheckID: id("L-exp"), Secret: v1Secret, Actor: "x", Now: later})
		if err != nil || n.Fence <= c.Fence {
			t.Fatalf("new check = %+v, %v", n, err)
		}
	})
}
