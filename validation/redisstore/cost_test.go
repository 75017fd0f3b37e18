package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// minimalHold is the yardstick of TestScriptCost: the least a hold can
// cost inside Redis (a counter and a SET NX PX), as a script.
var minimalHold = redis.NewScript(`local f = redis.call('INCR', KEYS[1])
return redis.call('SET', KEYS[2], f, 'NX', 'PX', 300000)`)

// evalStats reads INFO commandstats: for each command, calls and usec.
// scriptCommands are the commands that run a script or a function; INFO
// commandstats counts the commands those run inside apart.
var scriptCommands = map[string]bool{"evalsha": true, "eval": true, "fcall": true}

// scriptStat sums the calls and usec of the script commands in stats.
func scriptStat(stats map[string][2]float64) (sum [2]float64) {
	for name := range scriptCommands {
		sum[0] += stats[name][0]
		sum[1] += stats[name][1]
	}
	return sum
}

func evalStats(tb testing.TB, rdb *redis.Client) map[string][2]float64 {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][2]float64{}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, _ := strings.Cut(rest, ":")
		var v [2]float64
		for f := range strings.SplitSeq(fields, ",") {
			k, val, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseFloat(val, 64)
			switch k {
			case "calls":
				v[0] = n
			case "usec":
				v[1] = n
			}
		}
		out[name] = v
	}
	return out
}

// opCost is what one operation cost inside Redis, averaged over n runs:
// EVALSHA microseconds and the commands the script ran, by name.
type opCost struct {
	usec     float64
	commands map[string]float64
}

func (c opCost) total() float64 {
	var n float64
	for _, v := range c.commands {
		n += v
	}
	return n
}

// measureOp runs op n times (i = 0..n-1) between two INFO commandstats
// snapshots. setup runs before the first snapshot.
func measureOp(tb testing.TB, rdb *redis.Client, n int, op func(i int)) opCost {
	tb.Helper()
	if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
		tb.Fatal(err)
	}
	before := evalStats(tb, rdb)
	for i := range n {
		op(i)
	}
	after := evalStats(tb, rdb)
	c := opCost{commands: map[string]float64{}}
	b, a := scriptStat(before), scriptStat(after)
	c.usec = (a[1] - b[1]) / (a[0] - b[0])
	for name, v := range after {
		if scriptCommands[name] || name == "info" || name == "config|resetstat" {
			continue
		}
		if d := v[0] - before[name][0]; d > 0 {
			c.commands[name] = d / float64(n)
		}
	}
	return c
}

func (c opCost) names() string {
	names := make([]string, 0, len(c.commands))
	for k := range c.commands {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, " %s=%.2f", k, c.commands[k])
	}
	return b.String()
}

// TestScriptCost measures what each hot operation costs Redis (INFO
// commandstats, usec per EVALSHA or FCALL), as a ratio to minimalHold in the
// same run, and the bytes a customer costs. The operations run in
// interleaved blocks of 50 (minimal hold, check, refused check, token
// redemption, refused check of the excluded product, check, OTP
// redemption), so the load of a shared machine weighs on each alike.
// Timings vary by machine, so it only reports; ARBITER_COST=1 runs it.
// TestScriptCommands is the deterministic pin.
func TestScriptCost(t *testing.T) {
	if os.Getenv("ARBITER_COST") == "" {
		t.Skip("set ARBITER_COST=1 to measure script costs")
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("ARBITER_COST_N")); err == nil && v > 0 {
		n = v
	}
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := redisstore.New(rdb, redisstore.Options{})
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := minimalHold.Load(ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	code, _, err := tokens.OTPCode([]byte("0123456789abcdefghij"), now)
	if err != nil {
		t.Fatal(err)
	}
	checks := make([]validation.Check, n+20)
	ops := []struct {
		name string
		run  func(i int)
	}{
		{"minimal hold", func(i int) {
			k := fmt.Sprintf("min:{M-%d}", i)
			if err := minimalHold.EvalSha(ctx, rdb, []string{k + ":f", k + ":h"}).Err(); err != nil && err != redis.Nil {
				t.Fatal(err)
			}
		}},
		{"check (placed)", func(i int) { checks[i] = hold(t, s, fmt.Sprintf("P-%d", i), "credit_card", now) }},
		{"refusal (hold)", func(i int) {
			_, _, err := s.Hold(ctx, holdRequest(t, fmt.Sprintf("P-%d", i), "personal_loan", now))
			wantReason(t, err, validation.ReasonHoldExists)
		}},
		{"token redeem", func(i int) {
			if _, _, err := redeemToken(s, checks[i], "card-service", now); err != nil {
				t.Fatal(err)
			}
		}},
		{"refusal (grant)", func(i int) {
			_, _, err := s.Hold(ctx, holdRequest(t, fmt.Sprintf("P-%d", i), "personal_loan", now))
			wantReason(t, err, validation.ReasonConflictingProduct)
		}},
		{"check (2nd)", func(i int) { hold(t, s, fmt.Sprintf("O-%d", i), "credit_card", now) }},
		{"otp redeem", func(i int) {
			if _, _, err := redeemOTP(s, fmt.Sprintf("O-%d", i), "credit_card", code, "card-service", now); err != nil {
				t.Fatal(err)
			}
		}},
	}
	// Command counts first (a few rounds suffice), then the timed blocks.
	counts := make([]opCost, len(ops))
	for j, op := range ops {
		counts[j] = measureOp(t, rdb, 20, func(i int) { op.run(n + i) })
	}
	const block = 50
	usec, calls := make([]float64, len(ops)), make([]float64, len(ops))
	for start := 0; start < n; start += block {
		for j, op := range ops {
			before := scriptStat(evalStats(t, rdb))
			for i := start; i < min(start+block, n); i++ {
				op.run(i)
			}
			after := scriptStat(evalStats(t, rdb))
			calls[j] += after[0] - before[0]
			usec[j] += after[1] - before[1]
		}
	}
	base := usec[0] / calls[0]
	for j, op := range ops {
		per := usec[j] / calls[j]
		t.Logf("%-16s %6.1f usec/call  ratio %5.2fx  %5.2f commands:%s", op.name, per, per/base, counts[j].total(), counts[j].names())
	}
	t.Logf("memory per customer after one check and token redemption: %s", customerBytes(t, rdb, "P-0"))
	t.Logf("memory per customer after one check and OTP redemption: %s", customerBytes(t, rdb, "O-0"))
}

// customerBytes sums MEMORY USAGE over every key of one customer.
func customerBytes(tb testing.TB, rdb *redis.Client, customer string) string {
	tb.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "arb:{"+customer+"}:*").Result()
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(keys)
	var total int64
	var parts []string
	for _, k := range keys {
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			tb.Fatal(err)
		}
		total += n
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "arb:{"+customer+"}:"), n))
	}
	return fmt.Sprintf("%d bytes in %d keys (%s)", total, len(keys), strings.Join(parts, " "))
}
