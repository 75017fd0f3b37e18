package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
)

// What a candidate policy's impact report reads of the customers
// (validation.StandingScanner): read only, no script, so it settles no
// expiry and writes nothing; it runs beside the traffic like
// reconciliation's grant scan, one SCAN step of keys at a time, each read
// in one pipeline.
//
// The customers are those with grants (SCAN of arb:{*}:grants) and then
// those with none whose meta is still there, that is who placed a hold in
// the last AuditRetention: every customer whose audit can hold a checked
// event (SCAN of arb:{*}:meta, skipping customers with grants, seen in the
// first pass). A check's checked event is in the audit list once its hold
// ended; until then (and for a hold Redis dropped, until a script settles
// it) meta's shadow of the hold gives it.

var _ validation.StandingScanner = (*Store)(nil)

// metaPattern matches every customer's meta key (SCAN MATCH).
var metaPattern = customerKey("*", "meta")

// customerKey is the key of one of a customer's keys, by its name in
// customerKeyNames.
func customerKey(customer, name string) string {
	return customerKeys(customer)[slices.Index(customerKeyNames, name)]
}

// customerOfKey is the customer of one of its keys.
func customerOfKey(key string) string {
	c, _, _ := strings.Cut(strings.TrimPrefix(key, "arb:{"), "}:")
	return c
}

// shadowFields are the fields of meta that say whether a hold may be live
// and, if so, what its checked event needs.
var shadowFields = []string{"open", "h.id", "h.product", "h.created", "h.by", "h.agent", "h.fence"}

// ScanStandings implements validation.StandingScanner: the customers with
// grants, then those with a recent hold and no grants, one SCAN step of
// one master at a time (a Cluster's masters in parallel, fn called one
// batch at a time).
func (s *Store) ScanStandings(ctx context.Context, req validation.ScanRequest, fn func([]validation.CustomerStanding) error) error {
	var mu sync.Mutex
	pass := func(pattern string, withGrants bool) error {
		return s.scanKeys(ctx, "scan standings", pattern, func(ctx context.Context, node redis.Cmdable, keys []string) error {
			batch, err := readStandings(ctx, node, keys, req, withGrants)
			if err != nil || len(batch) == 0 {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			return fn(batch)
		})
	}
	if err := pass(grantsPattern, true); err != nil {
		return err
	}
	return pass(metaPattern, false)
}

// scanKeys calls fn with each SCAN step's keys matching pattern, on every
// master (a Cluster's in parallel: fn serialises what it shares); what
// names the scan in its errors. ScanGrants and ScanStandings scan with it.
func (s *Store) scanKeys(ctx context.Context, what, pattern string, fn func(context.Context, redis.Cmdable, []string) error) error {
	scan := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, pattern, scanCount).Result()
			if err != nil {
				return unavailable(what, err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, node, keys); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	return eachMaster(ctx, s.rdb, func(ctx context.Context, node redis.Cmdable, _ string) error { return scan(ctx, node) })
}

// standingCmds are one customer's reads.
type standingCmds struct {
	grants *redis.MapStringStringCmd
	ended  *redis.MapStringStringCmd
	audit  *redis.StringSliceCmd
	meta   *redis.SliceCmd
}

// readStandings reads the customers of keys in one pipeline. withGrants:
// the customers with grants (the first pass); otherwise only those without
// any.
func readStandings(ctx context.Context, node redis.Cmdable, keys []string, req validation.ScanRequest, withGrants bool) ([]validation.CustomerStanding, error) {
	cmds := make([]standingCmds, len(keys))
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			c := customerOfKey(k)
			cmds[i] = standingCmds{
				grants: p.HGetAll(ctx, grantsKey(c)),
				ended:  p.HGetAll(ctx, customerKey(c, "ended")),
				audit:  p.LRange(ctx, customerKey(c, "audit"), 0, -1),
				meta:   p.HMGet(ctx, customerKey(c, "meta"), shadowFields...),
			}
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("scan standings", err)
	}
	out := make([]validation.CustomerStanding, 0, len(keys))
	for i, k := range keys {
		if len(cmds[i].grants.Val()) > 0 != withGrants {
			continue
		}
		cs, err := decodeStanding(customerOfKey(k), cmds[i], req)
		if err != nil {
			return nil, err
		}
		out = append(out, cs)
	}
	return out, nil
}

func decodeStanding(customer string, cmds standingCmds, req validation.ScanRequest) (validation.CustomerStanding, error) {
	cs := validation.CustomerStanding{CustomerID: customer}
	gs, err := decodeGrants(customer, cmds.grants.Val())
	if err != nil {
		return cs, err
	}
	cs.Standing.Grants = gs
	for product, at := range cmds.ended.Val() {
		n, err := strconv.ParseInt(at, 10, 64)
		if err != nil {
			continue // not an end this release wrote; an end never refuses by mistake
		}
		if cs.Standing.Ended == nil {
			cs.Standing.Ended = map[string]time.Time{}
		}
		cs.Standing.Ended[product] = msTime(n)
	}
	for _, raw := range cmds.audit.Val() {
		ev, err := decodeEvent(raw)
		if err != nil {
			return cs, err
		}
		if ev.Type == validation.EventChecked && !ev.At.Before(req.Since) {
			cs.Checked = append(cs.Checked, ev)
		}
	}
	if ev, ok := shadowChecked(cmds.meta.Val()); ok && !ev.At.Before(req.Since) {
		cs.Checked = append(cs.Checked, ev)
	}
	slices.SortStableFunc(cs.Checked, func(a, b validation.Event) int { return b.At.Compare(a.At) })
	return cs, nil
}

// shadowChecked is the checked event of the hold meta's shadow describes
// (shadowFields' values), if one may be live.
func shadowChecked(v []any) (validation.Event, bool) {
	s := func(i int) string { x, _ := v[i].(string); return x }
	if len(v) != len(shadowFields) || s(0) != "1" || s(1) == "" {
		return validation.Event{}, false
	}
	created, _ := strconv.ParseInt(s(3), 10, 64)
	fence, _ := strconv.ParseInt(s(6), 10, 64)
	return validation.Event{At: msTime(created), Type: validation.EventChecked, Product: s(2), CheckID: s(1),
		Actor: s(4), Agent: s(5), Fence: fence}, true
}
