package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/pgarchive"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// TestOutboxCost measures what deploy/bench/outbox.sh compares: Redis µs
// per check FCALL (INFO commandstats) for fresh customers (a hold placed)
// and for refusals, and the Redis bytes each adds (INFO used_memory), with
// the outbox off or, with PROBE_OUTBOX=1, on. With the outbox on and
// PROBE_PG naming a PostgreSQL database, it then drains the outboxes into
// that archive with an Exporter and reports records/s, and the bytes per
// customer left in Redis once drained. It prints one PROBE line; it runs
// only when PROBE_REDIS names a Redis to measure on, and asserts no timing.
func TestOutboxCost(t *testing.T) {
	url := os.Getenv("PROBE_REDIS")
	if url == "" {
		t.Skip("PROBE_REDIS is not set: deploy/bench/outbox.sh runs this")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	outbox := os.Getenv("PROBE_OUTBOX") == "1"
	opts := redisstore.Options{}
	if outbox {
		opts.OutboxCap = 1 << 30
	}
	s := redisstore.New(rdb, opts)
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(os.Getenv("PROBE_N"))
	if err != nil || n <= 0 {
		t.Fatalf("PROBE_N: %q", os.Getenv("PROBE_N"))
	}
	tag := os.Getenv("PROBE_TAG") + strconv.FormatInt(time.Now().UnixNano(), 36)
	stat := func() (calls, usec float64) { return fcallStat(ctx, rdb) }
	used := func() float64 {
		for _, line := range strings.Split(rdb.Info(ctx, "memory").Val(), "\n") {
			if b, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				f, _ := strconv.ParseFloat(b, 64)
				return f
			}
		}
		return 0
	}
	policy := validation.DefaultPolicy()
	card, _ := policy.Rule("credit_card")
	loan, _ := policy.Rule("personal_loan")
	hold := func(customer string, r validation.Rule) error {
		id, _ := validation.NewCheckID(customer)
		_, _, err := s.Hold(ctx, validation.HoldRequest{Rule: r, CustomerID: customer, CheckID: id, Secret: make([]byte, 20),
			Actor: "branch", Now: time.Now(), Rating: validation.RatingInput{Skip: true}})
		return err
	}
	m0 := used()
	c0, u0 := stat()
	for i := range n {
		if err := hold(fmt.Sprintf("P%s-%d", tag, i), card); err != nil {
			t.Fatal(err)
		}
	}
	c1, u1 := stat()
	m1 := used()
	// Refusals: customers with a live card hold asking for a loan.
	c2, u2 := stat()
	for i := range n {
		if err := hold(fmt.Sprintf("P%s-%d", tag, i), loan); err == nil {
			t.Fatal("not refused")
		}
	}
	c3, u3 := stat()
	m2 := used()
	line := fmt.Sprintf("PROBE %s check=%.1f refusal=%.1f check_bytes=%.0f refusal_bytes=%.0f", os.Getenv("PROBE_TAG"),
		(u1-u0)/(c1-c0), (u3-u2)/(c3-c2), (m1-m0)/float64(n), (m2-m1)/float64(n))
	if !outbox {
		line += fmt.Sprintf(" kept_bytes=%.0f", (m2-m0)/float64(n))
	}
	if dsn := os.Getenv("PROBE_PG"); outbox && dsn != "" {
		arch, err := pgarchive.Open(ctx, dsn, pgarchive.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer arch.Close()
		ex := &validation.Exporter{Outbox: s, Archive: arch, Owner: "probe", Now: time.Now}
		start, archived := time.Now(), 0
		for {
			r := ex.Round(ctx)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			archived += r.Archived
			if r.Trimmed == 0 {
				break
			}
		}
		secs := time.Since(start).Seconds()
		line += fmt.Sprintf(" export_per_s=%.0f kept_bytes=%.0f", float64(archived)/secs, (used()-m0)/float64(n))
	}
	fmt.Println(line)
}
