package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// TestContractCaseHoldsTheLine: while a customer's reconciliation case is
// open, a check of a product of the case, or of one that excludes one of
// them, is refused case_open, and so is the redemption of a hold placed
// before the case opened (the hold is kept); resolving the case lifts it.
func TestContractCaseHoldsTheLine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.CaseHoldsTheLine(t, b.shared()) })
}

// TestCaseScriptCost pins what opening, refreshing and resolving a case
// cost on the server, in-script commands included (INFO commandstats).
func TestCaseScriptCost(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	store := redisstore.New(srv.Client(t), redisstore.Options{})
	ctx := context.Background()
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	c := validation.Case{CustomerID: "C-1", Products: []string{"credit_card", "personal_loan"}, Detail: "d", OpenedAt: time.Now(), RunID: "rec_1"}
	for _, step := range []struct {
		name string
		do   func() error
		want map[string]int64
	}{
		{"open", func() error { return store.OpenCase(ctx, c, time.Now()) },
			map[string]int64{"evalsha": 1, "hmget": 1, "get": 2, "set": 1, "lpush": 1, "pexpire": 1, "zadd": 1}}, // get: the hold, the case
		{"refresh", func() error { return store.OpenCase(ctx, c, time.Now()) },
			map[string]int64{"evalsha": 1, "hmget": 1, "get": 2, "set": 1, "zadd": 1}},
		{"resolve", func() error { _, err := store.ResolveCase(ctx, "C-1", "ops", "n", time.Now()); return err },
			map[string]int64{"evalsha": 1, "hmget": 1, "get": 3, "del": 1, "lpush": 1, "pexpire": 1, "zrem": 1}}, // get: the hold, the case, the re-check after the zrem
	} {
		t.Run(step.name, func(t *testing.T) {
			before := srv.CommandStats(t)
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
			after := srv.CommandStats(t)
			got := map[string]int64{}
			for k, v := range after {
				if d := v - before[k]; d > 0 && k != "info" && k != "hello" { // CommandStats's own connection
					got[k] = d
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(step.want) {
				t.Errorf("commands = %v, want %v", got, step.want)
			}
		})
	}
}

// reopenBeforeZRem opens a case (through another client) just before the
// first ZREM of the case index is sent: a run reopening the customer's
// case between the resolve script and its index removal.
type reopenBeforeZRem struct {
	other *redisstore.Store
	c     validation.Case
	once  sync.Once
}

func (h *reopenBeforeZRem) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *reopenBeforeZRem) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *reopenBeforeZRem) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "zrem" {
			h.once.Do(func() {
				if err := h.other.OpenCase(ctx, h.c, time.Now()); err != nil {
					panic(err)
				}
			})
		}
		return next(ctx, cmd)
	}
}

// TestResolveCaseRacingAReopen: a case reopened while it is being
// resolved stays listed in the open cases.
func TestResolveCaseRacingAReopen(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	ctx := context.Background()
	rdb := srv.Client(t)
	store := redisstore.New(rdb, redisstore.Options{})
	c := validation.Case{CustomerID: "C-1", Products: []string{"credit_card", "personal_loan"}, Detail: "d", OpenedAt: time.Now(), RunID: "rec_1"}
	if err := store.OpenCase(ctx, c, time.Now()); err != nil {
		t.Fatal(err)
	}
	rdb.AddHook(&reopenBeforeZRem{other: redisstore.New(srv.Client(t), redisstore.Options{}), c: c})
	if _, err := store.ResolveCase(ctx, "C-1", "ops", "resolved", time.Now()); err != nil {
		t.Fatal(err)
	}
	cases, err := store.Cases(ctx, 10)
	if err != nil || len(cases) != 1 || cases[0].CustomerID != "C-1" {
		t.Errorf("open cases = %+v, %v; want C-1's reopened case", cases, err)
	}
}
