package redisrecon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// The keys of reconciliation's own state. None is a customer's: each is one
// key outside any hash tag, on whatever master owns its slot. (The open
// cases and their index, arb:{C}:case and arb:recon:cases, are written with
// the customer's audit event and so belong to redisstore.)
//
//	arb:recon:lease                    string  the running run's id (PX, renewed)
//	arb:recon:schedule                 string  claims the interval's scheduled run (PX = interval)
//	arb:recon:runs                     zset    run id → started at (ms): the stored runs, for retention
//	arb:recon:run:<id>                 string  run JSON: status, progress, counts (PX = RunRetention)
//	arb:recon:run:<id>:findings        list    finding JSON, at most reconcile.MaxStoredFindings (PX = RunRetention)
//	arb:recon:run:<id>:seen:<product>  set     customers the product's feed listed (PX = seenTTL; dropped at the end)
//	arb:recon:last:<product>           hash    customers, at: the last successful run's count
//	arb:recon:orphans:<product>        string  JSON check id → first found orphan (ms), replaced by each releasing run (PX = RunRetention)
const (
	leaseKey    = "arb:recon:lease"
	scheduleKey = "arb:recon:schedule"
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
)

func runKey(id string) string            { return "arb:recon:run:" + id }
func findingsKey(id string) string       { return "arb:recon:run:" + id + ":findings" }
func seenKey(id, product string) string  { return "arb:recon:run:" + id + ":seen:" + product }
func lastCountKey(product string) string { return "arb:recon:last:" + product }
func orphansKey(product string) string   { return "arb:recon:orphans:" + product }

// Customers is what a reconciliation reads and writes of the customers' own
// keys: their grants in bulk, and the cases, each opened or resolved with
// its audit event under the customer's hash tag by redisstore's case
// script. *redisstore.Store implements it.
type Customers interface {
	Grants(ctx context.Context, customers []string) (map[string][]validation.Grant, error)
	ScanGrants(ctx context.Context, fn func(batch map[string][]validation.Grant) error) error
	OpenCase(ctx context.Context, c validation.Case, now time.Time) error
	Cases(ctx context.Context, limit int) ([]validation.Case, error)
	ResolveCase(ctx context.Context, customerID, actor, note string, now time.Time) (validation.Case, error)
}

var _ Customers = (*redisstore.Store)(nil)

// Store is reconcile.Store on Redis: the runs, their findings, seen sets,
// lease, schedule claim, last counts and orphan candidates under
// arb:recon:*, and, through Customers, the customers' side. It is
// safe for concurrent use.
type Store struct {
	Customers
	rdb redis.UniversalClient
}

var _ reconcile.Store = (*Store)(nil)

// New returns the Store of the Redis (single node, Sentinel or Cluster)
// behind rdb, with customers, normally the redisstore.Store on the same
// Redis, for the customers' side.
func New(rdb redis.UniversalClient, customers Customers) *Store {
	return &Store{Customers: customers, rdb: rdb}
}

// unavailable words a failed Redis call as redisstore does, so a failure
// reads the same whichever package made the call.
func unavailable(op string, err error) error { return redisstore.CallError(op, err) }

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

// The JSON shapes of runs and findings.
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
// lease lapsed never extends or deletes its successor's. They run as every
// script of arbiter's does (redisstore.Script: sent once, never resent).
var (
	renewLease   = redisstore.NewScript("renew_lease", `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	releaseLease = redisstore.NewScript("release_lease", `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
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
