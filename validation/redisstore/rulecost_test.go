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
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// TestRuleCost measures what deploy/bench/rules.sh compares across
// releases: Redis µs per check FCALL (INFO commandstats) for fresh
// customers (a hold placed) and for refusals (a customer holding a
// conflicting grant asks for the other product), under the default policy
// or, with PROBE_POLICY=rules, one with a family limit and a cooling-off
// rule (rulesPolicy). It prints one PROBE line; it runs only when
// PROBE_REDIS names a Redis to measure on, and asserts no timing.
func TestRuleCost(t *testing.T) {
	url := os.Getenv("PROBE_REDIS")
	if url == "" {
		t.Skip("PROBE_REDIS is not set: deploy/bench/rules.sh runs this")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	s := redisstore.New(rdb, redisstore.Options{})
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	policy := validation.DefaultPolicy()
	if f := os.Getenv("PROBE_POLICY"); f == "rules" {
		policy = rulesPolicy()
	}
	n, err := strconv.Atoi(os.Getenv("PROBE_N"))
	if err != nil || n <= 0 {
		t.Fatalf("PROBE_N: %q", os.Getenv("PROBE_N"))
	}
	tag := os.Getenv("PROBE_TAG") + strconv.FormatInt(time.Now().UnixNano(), 36)
	stat := func() (calls, usec float64) { return fcallStat(ctx, rdb) }
	card, _ := policy.Rule("credit_card")
	loan, _ := policy.Rule("personal_loan")
	hold := func(customer string, r validation.Rule) error {
		id, _ := validation.NewCheckID(customer)
		_, _, err := s.Hold(ctx, validation.HoldRequest{Rule: r, CustomerID: customer, CheckID: id, Secret: make([]byte, 20),
			Actor: "branch", Now: time.Now(), Rating: validation.RatingInput{Skip: true}})
		return err
	}
	c0, u0 := stat()
	for i := range n {
		if err := hold(fmt.Sprintf("P%s-%d", tag, i), card); err != nil {
			t.Fatal(err)
		}
	}
	c1, u1 := stat()
	// refusals: customers holding a card (imported outside the window) asking for a loan
	for i := range n {
		c := fmt.Sprintf("R%s-%d", tag, i)
		id, _ := validation.NewImportID(c)
		if _, err := s.Import(ctx, validation.ImportRequest{Rule: card, CustomerID: c, CheckID: id, Actor: "ops", GrantedAt: time.Now(), Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	c2, u2 := stat()
	for i := range n {
		if err := hold(fmt.Sprintf("R%s-%d", tag, i), loan); err == nil {
			t.Fatal("not refused")
		}
	}
	c3, u3 := stat()
	fmt.Printf("PROBE %s check=%.1f refusal=%.1f\n", os.Getenv("PROBE_TAG"), (u1-u0)/(c1-c0), (u3-u2)/(c3-c2))
}

// fcallStat is Redis's count of FCALLs and the µs they took (INFO
// commandstats), for the cost probes.
func fcallStat(ctx context.Context, rdb *redis.Client) (calls, usec float64) {
	for _, line := range strings.Split(rdb.Info(ctx, "commandstats").Val(), "\n") {
		if strings.HasPrefix(line, "cmdstat_fcall:") {
			fmt.Sscanf(strings.SplitN(line, ":", 2)[1], "calls=%f,usec=%f", &calls, &usec)
		}
	}
	return
}
