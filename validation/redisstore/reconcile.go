package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
)

// What reconciliation reads and writes of the customers' own keys: their
// grants in bulk, and the cases. A case lives under its customer's tag (its
// audit event is written with it, atomically, and the check and redeem
// scripts read it) and is listed by one index outside any tag. The rest of
// reconciliation's state (runs, findings, lease) is package redisrecon's.
//
//	arb:recon:cases                    zset    customer → opened at (ms): the open cases
//	arb:{C}:case                       string  the customer's open case JSON
const (
	casesKey  = "arb:recon:cases"
	scanCount = 1000 // keys per SCAN step
)

func caseKey(customer string) string   { return customerKeys(customer)[8] }
func grantsKey(customer string) string { return customerKeys(customer)[2] }
func customerOfGrantsKey(key string) string {
	return strings.TrimSuffix(strings.TrimPrefix(key, "arb:{"), "}:grants")
}

// grantsPattern matches every customer's grants key (SCAN MATCH).
var grantsPattern = grantsKey("*")

var (
	//go:embed lua/case.lua
	luaCase    string
	caseScript = script("case", caseArgs{}, caseReply{}, luaGuard, luaCase)
)

func init() { scripts = append(scripts, caseScript) }

// Grants is the ledger side of reconcile.Store: one HGETALL per customer,
// all in one pipeline.
func (s *Store) Grants(ctx context.Context, customers []string) (map[string][]validation.Grant, error) {
	cmds := make([]*redis.MapStringStringCmd, len(customers))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range customers {
			cmds[i] = p.HGetAll(ctx, grantsKey(c))
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("grants", err)
	}
	out := make(map[string][]validation.Grant, len(customers))
	for i, c := range customers {
		gs, err := decodeGrants(c, cmds[i].Val())
		if err != nil {
			return nil, err
		}
		out[c] = gs
	}
	return out, nil
}

// decodeGrants reads a customer's ledger (check id -> stored grant).
func decodeGrants(customer string, ledger map[string]string) ([]validation.Grant, error) {
	var gs []validation.Grant
	for id, raw := range ledger {
		g, err := decodeStoredGrant(customer, id, raw)
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	sortGrants(gs)
	return gs, nil
}

// ScanGrants is the ledger side of reconcile.Store: SCAN MATCH on every
// master (a Cluster's masters in parallel, fn called one batch at a time),
// each step's keys read with one pipelined HGETALL each.
func (s *Store) ScanGrants(ctx context.Context, fn func(map[string][]validation.Grant) error) error {
	var mu sync.Mutex
	return s.scanKeys(ctx, "scan grants", grantsPattern, func(ctx context.Context, node redis.Cmdable, keys []string) error {
		batch, err := readGrants(ctx, node, keys)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		return fn(batch)
	})
}

func readGrants(ctx context.Context, node redis.Cmdable, keys []string) (map[string][]validation.Grant, error) {
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("scan grants", err)
	}
	batch := make(map[string][]validation.Grant, len(keys))
	for i, k := range keys {
		c := customerOfGrantsKey(k)
		gs, err := decodeGrants(c, cmds[i].Val())
		if err != nil {
			return nil, err
		}
		if len(gs) > 0 {
			batch[c] = gs
		}
	}
	return batch, nil
}

type caseJSON struct {
	Customer string   `json:"customer_id"`
	Products []string `json:"products"`
	Detail   string   `json:"detail"`
	Opened   int64    `json:"opened"`
	Run      string   `json:"run"`
}

func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// OpenCase is the ledger side of reconcile.Store: the case and its audit
// event in one script, then its index entry (idempotent: a lost ZADD is
// made again by the next run that finds the case).
func (s *Store) OpenCase(ctx context.Context, c validation.Case, now time.Time) error {
	raw, err := json.Marshal(caseJSON{Customer: c.CustomerID, Products: c.Products, Detail: c.Detail, Opened: msOf(c.OpenedAt), Run: c.RunID})
	if err != nil {
		return err
	}
	var r caseReply
	err = s.run(ctx, caseScript, c.CustomerID, now, nil,
		caseArgs{Op: "open", Case: string(raw), Actor: validation.ReconcilerActor}, &r)
	if err != nil {
		return err
	}
	got, err := decodeCase(r.Case)
	if err != nil {
		return err
	}
	if err := s.rdb.ZAddNX(ctx, casesKey, redis.Z{Score: float64(msOf(got.OpenedAt)), Member: c.CustomerID}).Err(); err != nil {
		return unavailable("case index", err)
	}
	return nil
}

func decodeCase(raw string) (validation.Case, error) {
	var j caseJSON
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		return validation.Case{}, fmt.Errorf("decode case: %w", err)
	}
	return validation.Case{CustomerID: j.Customer, Products: j.Products, Detail: j.Detail, OpenedAt: msTime(j.Opened), RunID: j.Run}, nil
}

// Cases is the ledger side of reconcile.Store: the index, then each case
// (pipelined); an index entry whose case is gone (a resolution whose ZREM
// was lost) is dropped.
func (s *Store) Cases(ctx context.Context, limit int) ([]validation.Case, error) {
	ids, err := s.rdb.ZRange(ctx, casesKey, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, unavailable("cases", err)
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range ids {
			cmds[i] = p.Get(ctx, caseKey(c))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("cases", err)
	}
	out := []validation.Case{}
	for i, cmd := range cmds {
		raw, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			_ = s.rdb.ZRem(ctx, casesKey, ids[i]).Err()
			continue
		}
		c, err := decodeCase(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ResolveCase is the ledger side of reconcile.Store.
func (s *Store) ResolveCase(ctx context.Context, customerID, actor, note string, now time.Time) (validation.Case, error) {
	var r caseReply
	err := s.run(ctx, caseScript, customerID, now, nil,
		caseArgs{Op: "resolve", Actor: actor, Note: note}, &r)
	if err != nil {
		return validation.Case{}, err
	}
	if r.Kind != kindOK {
		return validation.Case{}, validation.NoOpenCase(customerID)
	}
	c, err := decodeCase(r.Case)
	if err != nil {
		return validation.Case{}, err
	}
	if err := s.rdb.ZRem(ctx, casesKey, customerID).Err(); err != nil {
		return c, unavailable("case index", err)
	}
	// The index is another slot, so the script cannot remove the entry
	// itself: a run that opened the customer's case again between the
	// script and the ZREM (its ZADD NX found the entry still there) would
	// be left out of the index. Re-read the case after the ZREM and put its
	// entry back if it is open. (The other order, an entry whose case is
	// gone, is dropped by Cases.)
	raw, err := s.rdb.Get(ctx, caseKey(customerID)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return c, nil
	case err != nil:
		return c, unavailable("case index", err)
	}
	again, err := decodeCase(raw)
	if err != nil {
		return c, err
	}
	if err := s.rdb.ZAddNX(ctx, casesKey, redis.Z{Score: float64(msOf(again.OpenedAt)), Member: customerID}).Err(); err != nil {
		return c, unavailable("case index", err)
	}
	return c, nil
}
