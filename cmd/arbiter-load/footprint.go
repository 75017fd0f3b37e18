package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/load"
)

// keyCost is one key of a customer: its name with the customer id written
// C, its type, MEMORY USAGE and time to live (-1: none, it stays for ever).
type keyCost struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Bytes int64  `json:"bytes"`
	TTLms int64  `json:"ttl_ms"`
}

// customerCost is every key of one customer after a scenario.
type customerCost struct {
	Scenario string    `json:"scenario"`
	What     string    `json:"what"`
	Keys     []keyCost `json:"keys"`
	// Bytes is the sum of MEMORY USAGE now; Forever the part in keys
	// without a TTL, which is what remains once every TTL has run out if
	// nothing touches the customer again (arbiter has no sweeper: what has
	// no TTL is pruned, if ever, by the customer's next script call).
	Bytes   int64 `json:"bytes"`
	Forever int64 `json:"bytes_without_ttl"`
	// MaxTTLms is when the last key with a TTL expires.
	MaxTTLms int64 `json:"max_ttl_ms"`
}

// footprint is `arbiter-load footprint`: what one customer costs in Redis
// after a check and a redemption (a granted customer, steady state), and
// after a check that ended without a grant (cancelled), from SCAN over the
// customer's keys (-pattern) and MEMORY USAGE of each: the store's layout
// is discovered, not assumed.
func footprint(ctx context.Context, f *scenarioFlags, stdout io.Writer) error {
	if f.redisURL == "" {
		return errors.New("footprint needs -redis-url")
	}
	if !strings.Contains(f.pattern, "%s") {
		return errors.New("-pattern must hold %s for the customer id")
	}
	opts, err := redis.ParseURL(f.redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	c := load.NewClient(f.base, f.keys, 4, f.timeout, load.NewRecorder())
	defer c.CloseIdle()
	if err := load.WaitReady(ctx, c.Base, 10*time.Second); err != nil {
		return err
	}
	// Upper case throughout: arbiter folds customer ids to it, and the
	// keys are scanned by the id as stored.
	prefix := fmt.Sprintf("F%X", time.Now().UnixNano()&0xffffffffff)
	var out []customerCost
	for _, sc := range []struct {
		name, what string
		run        func(customer string) error
	}{
		{"granted", "check then token redemption: 201, 201", func(id string) error {
			var ch load.CheckResponse
			if !c.Check(ctx, id, load.CreditCard, &ch, http.StatusCreated).OK ||
				!c.RedeemToken(ctx, load.CreditCard, ch.Token, nil, http.StatusCreated).OK {
				return errors.New("check and redeem failed")
			}
			return nil
		}},
		{"no_grant", "check then cancel: 201, 204; the hold ended, nothing granted", func(id string) error {
			var ch load.CheckResponse
			if !c.Check(ctx, id, load.CreditCard, &ch, http.StatusCreated).OK ||
				!c.Cancel(ctx, load.CreditCard, ch.CheckID, http.StatusNoContent).OK {
				return errors.New("check and cancel failed")
			}
			return nil
		}},
	} {
		id := prefix + "-" + strings.ToUpper(sc.name)
		if err := sc.run(id); err != nil {
			return fmt.Errorf("footprint %s: %w", sc.name, err)
		}
		cc, err := customerKeys(ctx, rdb, f.pattern, id)
		if err != nil {
			return err
		}
		cc.Scenario, cc.What = sc.name, sc.what
		out = append(out, cc)
	}
	return writeJSON(orStdout(f.jsonPath), stdout, out)
}

// customerKeys sums MEMORY USAGE (SAMPLES 0: every element counted) over
// the keys SCAN finds for the customer.
func customerKeys(ctx context.Context, rdb *redis.Client, pattern, id string) (customerCost, error) {
	var cc customerCost
	iter := rdb.Scan(ctx, 0, fmt.Sprintf(pattern, id), 1000).Iterator()
	var names []string
	for iter.Next(ctx) {
		names = append(names, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return cc, err
	}
	slices.Sort(names)
	for _, k := range names {
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return cc, fmt.Errorf("MEMORY USAGE %s: %w", k, err)
		}
		typ, _ := rdb.Type(ctx, k).Result()
		ttl, _ := rdb.PTTL(ctx, k).Result()
		ms := ttl.Milliseconds()
		if ttl < 0 {
			ms = -1
		}
		cc.Keys = append(cc.Keys, keyCost{Key: strings.ReplaceAll(k, id, "C"), Type: typ, Bytes: n, TTLms: ms})
		cc.Bytes += n
		if ms < 0 {
			cc.Forever += n
		}
		cc.MaxTTLms = max(cc.MaxTTLms, ms)
	}
	return cc, nil
}
