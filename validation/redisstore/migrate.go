package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The migration (arbiter migrate) rewrites what earlier versions wrote in
// the encodings the scripts read today, one customer per script
// (lua/migrate.lua, the only reader of the retired encodings), so that the
// hot scripts decode one encoding. Each customer is converted in one
// atomic step, and the release before this one reads both encodings, so it
// runs while that release serves. It keeps no state: a customer already
// converted costs its reads and converts nothing, so an interrupted run is
// resumed by running it again.

//go:embed lua/migrate.lua
var luaMigrate string

var migrateScript = script("migrate", migrateArgs{}, MigrateCounts{}, luaMigrate)

type migrateArgs struct {
	Extra  int  `lua:"extra,num"`  // KEYS position of the v1 log; the idempotency records follow it
	Fields int  `lua:"fields,num"` // tokenFields: a c2 value with fewer lacks the token
	DryRun bool `lua:"dry_run"`
}

// MigrateCounts are the values in retired encodings that a migration
// converted (or, dry, found), by kind. It is migrate.lua's reply.
type MigrateCounts struct {
	Checks    int64 `lua:"checks" json:"checks"`       // v1 JSON records of ended checks
	Grants    int64 `lua:"grants" json:"grants"`       // v1 JSON grants
	Ledger    int64 `lua:"ledger" json:"ledger"`       // c2 grants (whole checks), made g1
	Tokenless int64 `lua:"tokenless" json:"tokenless"` // c2 checks (hold, record, grant) without the token field
	Events    int64 `lua:"events" json:"events"`       // v1 JSON events (audit and attempts)
	Holds     int64 `lua:"holds" json:"holds"`         // v1 holds (a hash), live or expired and unsettled
	Lastv     int64 `lua:"lastv" json:"lastv"`         // meta's lastv, replaced by the shadow fields
	Meta      int64 `lua:"meta" json:"meta"`           // v1 meta fields (last_product, last_expires, last_fence, open 0)
	Idem      int64 `lua:"idem" json:"idem"`           // v1 idempotency records of refusals, deleted
	Logs      int64 `lua:"logs" json:"logs"`           // v1 logs of check ids, deleted
}

// Total is the number of values converted, all kinds together.
func (c MigrateCounts) Total() int64 {
	return c.Checks + c.Grants + c.Ledger + c.Tokenless + c.Events + c.Holds + c.Lastv + c.Meta + c.Idem + c.Logs
}

func (c *MigrateCounts) add(o MigrateCounts) {
	c.Checks += o.Checks
	c.Grants += o.Grants
	c.Ledger += o.Ledger
	c.Tokenless += o.Tokenless
	c.Events += o.Events
	c.Holds += o.Holds
	c.Lastv += o.Lastv
	c.Meta += o.Meta
	c.Idem += o.Idem
	c.Logs += o.Logs
}

// MigrateReport is what a migration did so far.
type MigrateReport struct {
	// Customers counts the customer scripts run: a customer whose keys
	// span several SCAN batches counts once in each.
	Customers int64 `json:"customers"`
	MigrateCounts
}

// MigrateProgress is reported after each SCAN batch.
type MigrateProgress struct {
	Node   string        `json:"node"`   // the master scanned, "" for a client that is not a cluster
	Cursor uint64        `json:"cursor"` // its SCAN cursor; 0: the node is done
	Report MigrateReport `json:"report"` // all nodes so far
}

// MigrateOptions configure Migrate. The zero value converts everything.
type MigrateOptions struct {
	DryRun   bool                  // count what would be converted, write nothing
	Batch    int64                 // SCAN COUNT; default 1000
	Progress func(MigrateProgress) // when set, called after each batch, one call at a time
}

// Migrate converts every customer's values in retired encodings to the
// current ones, scanning every master (a cluster) or the one server. It is
// idempotent and safe while instances of this or the previous release
// serve; a failed run is resumed by running it again. It returns the first
// error, with the report so far.
func (s *Store) Migrate(ctx context.Context, opts MigrateOptions) (MigrateReport, error) {
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	var (
		mu  sync.Mutex
		rep MigrateReport
	)
	add := func(node string, cursor uint64, customers int64, c MigrateCounts) {
		mu.Lock()
		defer mu.Unlock()
		rep.Customers += customers
		rep.add(c)
		if opts.Progress != nil {
			opts.Progress(MigrateProgress{Node: node, Cursor: cursor, Report: rep})
		}
	}
	err := eachMaster(ctx, s.rdb, func(ctx context.Context, node redis.Cmdable, addr string) error {
		return s.migrateNode(ctx, node, addr, opts, add)
	})
	mu.Lock()
	defer mu.Unlock()
	return rep, err
}

// migrateNode scans one server's customer keys and migrates each customer
// of each batch once.
func (s *Store) migrateNode(ctx context.Context, node redis.Cmdable, name string, opts MigrateOptions,
	add func(string, uint64, int64, MigrateCounts)) error {
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, "arb:{*", opts.Batch).Result()
		if err != nil {
			return fmt.Errorf("migrate: scan %s: %w", name, err)
		}
		var batch MigrateCounts
		customers := batchCustomers(keys)
		for _, c := range customers {
			got, err := s.migrateCustomer(ctx, c.id, c.idem, opts.DryRun)
			if err != nil {
				add(name, cursor, 0, batch)
				return fmt.Errorf("migrate customer %s: %w", c.id, err)
			}
			batch.add(got)
		}
		cursor = next
		add(name, cursor, int64(len(customers)), batch)
		if cursor == 0 {
			return nil
		}
	}
}

type keyedCustomer struct {
	id   string
	idem []string // its idempotency records in the batch
}

// batchCustomers returns the customers whose keys (arb:{<customer>}:...)
// are in keys, once each, in order of appearance.
func batchCustomers(keys []string) []keyedCustomer {
	var out []keyedCustomer
	at := map[string]int{}
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, "arb:{")
		id, name, ok2 := strings.Cut(rest, "}:")
		if !ok || !ok2 {
			continue
		}
		i, seen := at[id]
		if !seen {
			i = len(out)
			at[id] = i
			out = append(out, keyedCustomer{id: id})
		}
		if strings.HasPrefix(name, "idem:") {
			out[i].idem = append(out[i].idem, k)
		}
	}
	return out
}

// v1LogKey is the v1 layout's list of a customer's check ids, which only
// the migration still names (to delete it).
func v1LogKey(customer string) string { return "arb:{" + customer + "}:log" }

func (s *Store) migrateCustomer(ctx context.Context, customer string, idem []string, dry bool) (MigrateCounts, error) {
	var got MigrateCounts
	extra := append([]string{v1LogKey(customer)}, idem...)
	args := migrateArgs{Extra: firstExtraKey, Fields: tokenFields, DryRun: dry}
	err := s.run(ctx, migrateScript, customer, time.Now(), extra, args, &got)
	return got, err
}

// tokenFields is how many fields a c2 check has up to its token, the field
// the migration gives the checks of releases before it (Tokenless). Fields
// added after it need no migration: a value without them reads them as
// empty (storedCheck).
var tokenFields = slices.Index(checkCodec.names(), "token") + 1
