package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
)

// Reconciliation keys. Runs, their findings, the seen sets, the lease and
// the last counts are outside any customer's hash tag: each is one key, on
// whatever master owns its slot. A case lives under its customer's tag (its
// audit event is written with it, atomically) and is listed by one index.
//
//	arb:recon:lease                    string  the running run's id (PX, renewed)
//	arb:recon:schedule                 string  claims the interval's scheduled run (PX = interval)
//	arb:recon:runs                     zset    run id → started at (ms): the stored runs, for retention
//	arb:recon:run:<id>                 string  run JSON: status, progress, counts (PX = RunRetention)
//	arb:recon:run:<id>:findings        list    finding JSON, at most MaxStoredFindings (PX = RunRetention)
//	arb:recon:run:<id>:seen:<product>  set     customers the product's feed listed (PX = seenTTL; dropped at the end)
//	arb:recon:last:<product>           hash    customers, at: the last successful run's count
//	arb:recon:orphans:<product>        string  JSON check id → first found orphan (ms), replaced by each releasing run (PX = RunRetention)
//	arb:recon:cases                    zset    customer → opened at (ms): the open cases
//	arb:{C}:case                       string  the customer's open case JSON
const (
	leaseKey    = "arb:recon:lease"
	scheduleKey = "arb:recon:schedule"
	casesKey    = "arb:recon:cases"
	runsKey     = "arb:recon:runs"
	// RunRetention is how long a run and its findings stay readable.
	RunRetention = 7 * 24 * time.Hour
	// MaxStoredRuns bounds the runs kept (the newest); older ones are
	// deleted, findings and all, when a run starts.
	MaxStoredRuns = 1000
	// MaxStoredFindingsTotal bounds the findings kept of earlier runs when a
	// run starts: the newest runs' are kept while their sum stays within it,
	// the older runs' lists are deleted (their counts stay). With the
	// running run's own (at most reconcile.MaxStoredFindings), the store
	// never holds more than 110,000 findings, about 40 MB, however often
	// runs are started or a broken feed keeps producing findings.
	MaxStoredFindingsTotal = 100_000
	seenTTL                = 24 * time.Hour
	scanCount              = 1000 // keys per SCAN step
)

func runKey(id string) string            { return "arb:recon:run:" + id }
func findingsKey(id string) string       { return "arb:recon:run:" + id + ":findings" }
func seenKey(id, product string) string  { return "arb:recon:run:" + id + ":seen:" + product }
func lastCountKey(product string) string { return "arb:recon:last:" + product }
func orphansKey(product string) string   { return "arb:recon:orphans:" + product }
func caseKey(customer string) string     { return customerKeys(customer)[8] }
func grantsKey(customer string) string   { return customerKeys(customer)[2] }
func customerOfGrantsKey(key string) string {
	return strings.TrimSuffix(strings.TrimPrefix(key, "arb:{"), "}:grants")
}

// grantsPattern matches every customer's grants key (SCAN MATCH).
var grantsPattern = grantsKey("*")

var (
	//go:embed lua/case.lua
	luaCase    string
	caseScript = script("case", caseArgs{}, caseReply{}, luaCase)
)

func init() { scripts = append(scripts, caseScript) }

// caseArgs and caseReply are case.lua's contract (see contract.go).
type caseArgs struct {
	Op    string `lua:"op"`    // open | resolve
	Case  string `lua:"case"`  // open: the case, JSON
	Actor string `lua:"actor"` // who opens or resolves it
	Note  string `lua:"note"`  // resolve: the admin's note
}

type caseReply struct {
	Kind    string `lua:"kind"`    // ok | error
	Reason  string `lua:"reason"`  // error: not_found
	Case    string `lua:"case"`    // the case, JSON
	Outcome string `lua:"outcome"` // opened | refreshed | resolved
}

var _ reconcile.Store = (*Store)(nil)

// Grants implements reconcile.Store: one HVALS per customer, all
// in one pipeline.
func (s *Store) Grants(ctx context.Context, customers []string) (map[string][]validation.Grant, error) {
	cmds := make([]*redis.StringSliceCmd, len(customers))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range customers {
			cmds[i] = p.HVals(ctx, grantsKey(c))
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

func decodeGrants(customer string, raws []string) ([]validation.Grant, error) {
	var gs []validation.Grant
	for _, raw := range raws {
		g, err := decodeGrant(customer, raw)
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	sortGrants(gs)
	return gs, nil
}

// ScanGrants implements reconcile.Store: SCAN MATCH on every
// master (a Cluster's masters in parallel, fn called one batch at a time),
// each step's keys read with one pipelined HVALS each.
func (s *Store) ScanGrants(ctx context.Context, fn func(map[string][]validation.Grant) error) error {
	var mu sync.Mutex
	scan := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, grantsPattern, scanCount).Result()
			if err != nil {
				return unavailable("scan grants", err)
			}
			if len(keys) > 0 {
				batch, err := readGrants(ctx, node, keys)
				if err != nil {
					return err
				}
				mu.Lock()
				err = fn(batch)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return scan(ctx, m) })
	}
	return scan(ctx, s.rdb)
}

func readGrants(ctx context.Context, node redis.Cmdable, keys []string) (map[string][]validation.Grant, error) {
	cmds := make([]*redis.StringSliceCmd, len(keys))
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HVals(ctx, k)
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

// MarkSeen implements reconcile.Store: one SADD per page.
func (s *Store) MarkSeen(ctx context.Context, run, product string, customers []string) error {
	if len(customers) == 0 {
		return nil
	}
	members := make([]any, len(customers))
	for i, c := range customers {
		members[i] = c
	}
	k := seenKey(run, product)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, k, members...)
		p.PExpire(ctx, k, seenTTL)
		return nil
	})
	if err != nil {
		return unavailable("mark seen", err)
	}
	return nil
}

// Seen implements reconcile.Store: one SMISMEMBER.
func (s *Store) Seen(ctx context.Context, run, product string, customers []string) ([]bool, error) {
	if len(customers) == 0 {
		return nil, nil
	}
	members := make([]any, len(customers))
	for i, c := range customers {
		members[i] = c
	}
	seen, err := s.rdb.SMIsMember(ctx, seenKey(run, product), members...).Result()
	if err != nil {
		return nil, unavailable("seen", err)
	}
	return seen, nil
}

// DropRun implements reconcile.Store.
func (s *Store) DropRun(ctx context.Context, run string, products []string) error {
	for _, p := range products {
		if err := s.rdb.Del(ctx, seenKey(run, p)).Err(); err != nil {
			return unavailable("drop run", err)
		}
	}
	return nil
}

// The JSON shapes of runs, findings and cases.
type runJSON struct {
	ID         string                        `json:"id"`
	Status     string                        `json:"status"`
	StartedAt  int64                         `json:"started_at"`
	FinishedAt int64                         `json:"finished_at,omitempty"`
	StartedBy  string                        `json:"started_by"`
	Sources    []sourceJSON                  `json:"sources"`
	Counts     map[reconcile.FindingKind]int `json:"counts"`
	Findings   int                           `json:"findings"`
	Error      string                        `json:"error,omitempty"`
}

type sourceJSON struct {
	Product   string `json:"product"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Holdings  int    `json:"holdings"`
	Customers int    `json:"customers"`
	Proven    bool   `json:"proven,omitempty"`
	Error     string `json:"error,omitempty"`
}

type findingJSON struct {
	Kind     string   `json:"kind"`
	Customer string   `json:"customer_id"`
	Products []string `json:"products"`
	Detail   string   `json:"detail"`
	Action   string   `json:"action"`
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

func timeOf(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func runJSONOf(r reconcile.Run) runJSON {
	j := runJSON{ID: r.ID, Status: string(r.Status), StartedAt: msOf(r.StartedAt), FinishedAt: msOf(r.FinishedAt),
		StartedBy: r.StartedBy, Counts: r.Counts, Findings: r.Findings, Error: r.Error}
	for _, p := range r.Sources {
		j.Sources = append(j.Sources, sourceJSON{Product: p.Product, Name: p.Name, Status: string(p.Status), Holdings: p.Holdings, Customers: p.Customers, Proven: p.Proven, Error: p.Error})
	}
	return j
}

// SaveRun implements reconcile.Store; a run's first save bounds
// what the earlier runs keep (trimRuns).
func (s *Store) SaveRun(ctx context.Context, r reconcile.Run) error {
	raw, err := json.Marshal(runJSONOf(r))
	if err != nil {
		return err
	}
	var added *redis.IntCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, runKey(r.ID), raw, RunRetention)
		added = p.ZAddNX(ctx, runsKey, redis.Z{Score: float64(msOf(r.StartedAt)), Member: r.ID})
		return nil
	})
	if err != nil {
		return unavailable("save run", err)
	}
	if added.Val() == 1 { // the run's first save: it starts
		return s.trimRuns(ctx, r)
	}
	return nil
}

// trimRuns bounds what earlier runs keep, as a run starts (it holds the
// lease, so no other run writes meanwhile): runs past MaxStoredRuns are
// deleted (and leave the index; one past RunRetention expired already); the findings of runs
// past MaxStoredFindingsTotal (newest first) are deleted and their run
// says findings 0. The seen sets of the run before (dropped at its end,
// unless its process died) are deleted too.
func (s *Store) trimRuns(ctx context.Context, started reconcile.Run) error {
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: runsKey, Start: 0, Stop: -1, Rev: true}).Result()
	if err != nil {
		return unavailable("trim runs", err)
	}
	lens := make([]*redis.IntCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			lens[i] = p.LLen(ctx, findingsKey(id))
		}
		return nil
	})
	if err != nil {
		return unavailable("trim runs", err)
	}
	kept, runs, prev := 0, 0, ""
	var drop, emptied []string
	for i, id := range ids {
		if id == started.ID {
			continue
		}
		if prev == "" {
			prev = id
		}
		switch runs++; {
		case runs > MaxStoredRuns:
			drop = append(drop, id)
		case lens[i].Val() > 0 && kept+int(lens[i].Val()) > MaxStoredFindingsTotal:
			emptied, kept = append(emptied, id), MaxStoredFindingsTotal // older runs' go too
		default:
			kept += int(lens[i].Val())
		}
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range drop {
			p.Del(ctx, runKey(id), findingsKey(id))
			p.ZRem(ctx, runsKey, id)
		}
		for _, id := range emptied {
			p.Del(ctx, findingsKey(id))
		}
		for _, src := range started.Sources {
			if prev != "" {
				p.Del(ctx, seenKey(prev, src.Product))
			}
		}
		return nil
	})
	if err != nil {
		return unavailable("trim runs", err)
	}
	for _, id := range emptied {
		if err := s.zeroFindings(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// zeroFindings makes a run whose findings were deleted say it has none
// (its counts stay).
func (s *Store) zeroFindings(ctx context.Context, id string) error {
	r, err := s.Run(ctx, id)
	if errors.Is(err, validation.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	r.Findings = 0
	raw, err := json.Marshal(runJSONOf(r))
	if err != nil {
		return err
	}
	if err := s.rdb.SetArgs(ctx, runKey(id), raw, redis.SetArgs{KeepTTL: true, Mode: "XX"}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("trim runs", err)
	}
	return nil
}

// Run implements reconcile.Store.
func (s *Store) Run(ctx context.Context, id string) (reconcile.Run, error) {
	raw, err := s.rdb.Get(ctx, runKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return reconcile.Run{}, validation.Errorf(validation.ReasonNotFound, "no reconciliation %q (runs are kept %s)", id, RunRetention)
	}
	if err != nil {
		return reconcile.Run{}, unavailable("run", err)
	}
	var j runJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return reconcile.Run{}, fmt.Errorf("decode run: %w", err)
	}
	run := reconcile.Run{ID: j.ID, Status: reconcile.RunStatus(j.Status), StartedAt: timeOf(j.StartedAt), FinishedAt: timeOf(j.FinishedAt),
		StartedBy: j.StartedBy, Counts: j.Counts, Findings: j.Findings, Error: j.Error}
	for _, p := range j.Sources {
		run.Sources = append(run.Sources, reconcile.SourceProgress{Product: p.Product, Name: p.Name, Status: reconcile.SourceStatus(p.Status),
			Holdings: p.Holdings, Customers: p.Customers, Proven: p.Proven, Error: p.Error})
	}
	return run, nil
}

// AddFindings implements reconcile.Store.
func (s *Store) AddFindings(ctx context.Context, run string, fs []reconcile.Finding) error {
	vals := make([]any, len(fs))
	for i, f := range fs {
		raw, err := json.Marshal(findingJSON{Kind: string(f.Kind), Customer: f.CustomerID, Products: f.Products, Detail: f.Detail, Action: f.Action})
		if err != nil {
			return err
		}
		vals[i] = raw
	}
	k := findingsKey(run)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, k, vals...)
		p.PExpire(ctx, k, RunRetention)
		return nil
	})
	if err != nil {
		return unavailable("add findings", err)
	}
	return nil
}

// Findings implements reconcile.Store.
func (s *Store) Findings(ctx context.Context, run string, offset, limit int) ([]reconcile.Finding, error) {
	raws, err := s.rdb.LRange(ctx, findingsKey(run), int64(offset), int64(offset+limit-1)).Result()
	if err != nil {
		return nil, unavailable("findings", err)
	}
	out := make([]reconcile.Finding, 0, len(raws))
	for _, raw := range raws {
		var j findingJSON
		if err := json.Unmarshal([]byte(raw), &j); err != nil {
			return nil, fmt.Errorf("decode finding: %w", err)
		}
		out = append(out, reconcile.Finding{Kind: reconcile.FindingKind(j.Kind), CustomerID: j.Customer, Products: j.Products, Detail: j.Detail, Action: j.Action})
	}
	return out, nil
}

// The lease is compared before it is renewed or given up, so a run whose
// lease lapsed never extends or deletes its successor's.
var (
	renewLease   = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	releaseLease = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
)

// AcquireLease implements reconcile.Store (SET NX PX).
func (s *Store) AcquireLease(ctx context.Context, holder string, ttl time.Duration) (bool, string, error) {
	ok, err := s.rdb.SetNX(ctx, leaseKey, holder, ttl).Result()
	if err != nil {
		return false, "", unavailable("lease", err)
	}
	if ok {
		return true, holder, nil
	}
	cur, err := s.rdb.Get(ctx, leaseKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, "", unavailable("lease", err)
	}
	return false, cur, nil
}

// RenewLease implements reconcile.Store.
func (s *Store) RenewLease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	n, err := renewLease.Run(ctx, s.rdb, []string{leaseKey}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		return false, unavailable("lease", err)
	}
	return n == 1, nil
}

// LeaseHolder implements reconcile.Store.
func (s *Store) LeaseHolder(ctx context.Context) (string, error) {
	cur, err := s.rdb.Get(ctx, leaseKey).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", unavailable("lease", err)
	}
	return cur, nil
}

// ReleaseLease implements reconcile.Store.
func (s *Store) ReleaseLease(ctx context.Context, holder string) error {
	if err := releaseLease.Run(ctx, s.rdb, []string{leaseKey}, holder).Err(); err != nil {
		return unavailable("lease", err)
	}
	return nil
}

// ClaimSchedule implements reconcile.Store (SET NX PX).
func (s *Store) ClaimSchedule(ctx context.Context, holder string, every time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, scheduleKey, holder, every).Result()
	if err != nil {
		return false, unavailable("schedule", err)
	}
	return ok, nil
}

// LastCount implements reconcile.Store.
func (s *Store) LastCount(ctx context.Context, product string) (int, error) {
	v, err := s.rdb.HGet(ctx, lastCountKey(product), "customers").Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("last count", err)
	}
	return strconv.Atoi(v)
}

// SetLastCount implements reconcile.Store.
func (s *Store) SetLastCount(ctx context.Context, product string, n int, at time.Time) error {
	if err := s.rdb.HSet(ctx, lastCountKey(product), "customers", n, "at", at.UnixMilli()).Err(); err != nil {
		return unavailable("last count", err)
	}
	return nil
}

// OrphanCandidates implements reconcile.Store (one GET).
func (s *Store) OrphanCandidates(ctx context.Context, product string) (map[string]time.Time, error) {
	raw, err := s.rdb.Get(ctx, orphansKey(product)).Bytes()
	if errors.Is(err, redis.Nil) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, unavailable("orphan candidates", err)
	}
	var m map[string]int64
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode orphan candidates of %s: %w", product, err)
	}
	out := make(map[string]time.Time, len(m))
	for id, ms := range m {
		out[id] = timeOf(ms)
	}
	return out, nil
}

// SetOrphanCandidates implements reconcile.Store: one SET PX
// (or DEL when none), so the replacement is atomic.
func (s *Store) SetOrphanCandidates(ctx context.Context, product string, c map[string]time.Time) error {
	k := orphansKey(product)
	var err error
	if len(c) == 0 {
		err = s.rdb.Del(ctx, k).Err()
	} else {
		m := make(map[string]int64, len(c))
		for id, at := range c {
			m[id] = msOf(at)
		}
		raw, jerr := json.Marshal(m)
		if jerr != nil {
			return jerr
		}
		err = s.rdb.Set(ctx, k, raw, RunRetention).Err()
	}
	if err != nil {
		return unavailable("orphan candidates", err)
	}
	return nil
}

// OpenCase implements reconcile.Store: the case and its audit
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
	return validation.Case{CustomerID: j.Customer, Products: j.Products, Detail: j.Detail, OpenedAt: timeOf(j.Opened), RunID: j.Run}, nil
}

// Cases implements reconcile.Store: the index, then each case
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

// ResolveCase implements reconcile.Store.
func (s *Store) ResolveCase(ctx context.Context, customerID, actor, note string, now time.Time) (validation.Case, error) {
	var r caseReply
	err := s.run(ctx, caseScript, customerID, now, nil,
		caseArgs{Op: "resolve", Actor: actor, Note: note}, &r)
	if err != nil {
		return validation.Case{}, err
	}
	if r.Kind != "ok" {
		return validation.Case{}, validation.Errorf(validation.ReasonNotFound, "customer %s has no open case", customerID)
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
