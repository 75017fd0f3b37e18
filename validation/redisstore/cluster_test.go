package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// The contract suite runs on a real 3-master / 3-replica Redis Cluster too,
// with and without WAIT (and with WAIT, with the outbox on and the calls
// that do not wait autopipelined, as arbiter runs by default): one cluster
// for the whole package (creating one takes seconds), flushed before each
// test and used by one test at a time.
func init() {
	backends["cluster"] = func(tb testing.TB) backend { return clusterBackend(tb, redisstore.Options{CompactGrants: true}) }
	backends["cluster-wait1"] = func(tb testing.TB) backend {
		return clusterBackend(tb, redisstore.Options{WaitReplicas: 1, WaitTimeout: time.Second, OutboxCap: testOutboxCap, AutoPipeline: true, CompactGrants: true})
	}
}

var shared struct {
	once    sync.Once
	cluster *redistest.Cluster
	err     error
	inUse   sync.Mutex // held by the test using the cluster
}

// TestMain stops the shared cluster after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	os.Exit(code)
}

// sharedCluster starts the package's cluster on first use and lends it to
// tb alone until tb ends, emptied.
func sharedCluster(tb testing.TB) *redistest.Cluster {
	tb.Helper()
	shared.once.Do(func() { shared.cluster, shared.err = redistest.StartCluster() })
	if redistest.IsRedisMissing(shared.err) {
		redistest.SkipOrFailMissing(tb, shared.err)
	}
	if shared.err != nil {
		tb.Fatalf("start the shared cluster: %v", shared.err)
	}
	shared.inUse.Lock()
	tb.Cleanup(shared.inUse.Unlock)
	rdb := shared.cluster.Client(tb)
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
	if err != nil {
		tb.Fatalf("flush the shared cluster: %v", err)
	}
	return shared.cluster
}

func clusterBackend(tb testing.TB, opts redisstore.Options) backend {
	tb.Helper()
	rdb := sharedCluster(tb).Client(tb)
	redisstore.FollowFailovers(rdb)
	return backend{store: redisstore.New(rdb, opts), rdb: rdb, expire: waitHoldGone(rdb)}
}

// TestClusterReshardUnderLoad moves busy slots between masters with
// redis-cli --cluster reshard while workers check, redeem and release on
// customers living in those slots, a third of them with WAIT 1 and a
// third with the calls autopipelined. Every
// operation must succeed: MOVED, ASK and TRYAGAIN are followed or waited
// out by the client, never surfaced as errors.
func TestClusterReshardUnderLoad(t *testing.T) {
	c := sharedCluster(t)
	rdb := c.Client(t)
	redisstore.FollowFailovers(rdb)
	ctx := context.Background()
	if err := rdb.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	plain := redisstore.New(rdb, redisstore.Options{})
	durable := redisstore.New(rdb, redisstore.Options{WaitReplicas: 1, WaitTimeout: time.Second})
	piped := pipelinedStore(t, rdb, redisstore.Options{})

	// The customers live in the first slots of one master, which are the
	// ones redis-cli moves first.
	src := c.Master(t, "arb:{RS-0}:meta")
	dst := c.Master(t, otherMasterKey(t, c, src))
	srcID, dstID := nodeID(t, src), nodeID(t, dst)
	first := firstSlot(t, rdb, src.Addr)
	const moved = 64
	var customers []string
	for i := 0; len(customers) < 24 && i < 200000; i++ {
		name := fmt.Sprintf("RS-%d", i)
		slot := rdb.ClusterKeySlot(ctx, "arb:{"+name+"}:meta").Val()
		if slot >= first && slot < first+moved {
			customers = append(customers, name)
		}
	}
	if len(customers) < 8 {
		t.Fatalf("found %d customers in slots %d..%d", len(customers), first, first+moved-1)
	}

	stop := make(chan struct{})
	var ops, failures atomic.Int64
	var wg sync.WaitGroup
	for i, customer := range customers {
		s := []*redisstore.Store{plain, durable, piped}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 100000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := cycle(s, customer); err != nil {
					failures.Add(1)
					t.Errorf("customer %s (cycle %d): %v", customer, n, err)
					return
				}
				ops.Add(3)
			}
		}()
	}

	reshard := func(from, to string) {
		t.Helper()
		start := time.Now()
		out, err := exec.Command("redis-cli", "--cluster", "reshard", src.Addr,
			"--cluster-from", from, "--cluster-to", to, "--cluster-slots", fmt.Sprint(moved),
			"--cluster-yes").CombinedOutput()
		if err != nil {
			t.Fatalf("reshard: %v\n%s", err, tail(string(out)))
		}
		t.Logf("resharded %d slots in %v", moved, time.Since(start).Round(time.Millisecond))
	}
	waitOps := func(n int64) {
		deadline := time.Now().Add(10 * time.Second)
		for target := ops.Load() + n; ops.Load() < target && failures.Load() == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("load stalled at %d operations", ops.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	before := redirects(t, c)
	waitOps(300)
	reshard(srcID, dstID)
	waitOps(300)
	if got := c.Master(t, "arb:{"+customers[0]+"}:meta"); got != dst {
		t.Fatalf("after reshard the master of %s is %s, want %s", customers[0], got.Addr, dst.Addr)
	}
	// Back again: the slots now start at dst's lowest... move them by
	// asking for the same count from dst, whose lowest slots are these.
	if firstSlot(t, rdb, dst.Addr) == first {
		reshard(dstID, srcID)
		waitOps(300)
	}
	close(stop)
	wg.Wait()
	after := redirects(t, c)
	t.Logf("%d operations on %d customers, %d failed; redirect replies during the load: %v (before: %v)",
		ops.Load(), len(customers), failures.Load(), after, before)
	if after["MOVED"] <= before["MOVED"] {
		t.Fatalf("no MOVED reply during the reshard (before %v, after %v): the load missed the moving slots", before, after)
	}
	for _, customer := range customers {
		cust, err := plain.Customer(ctx, customer, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(cust.Grants) > 1 {
			t.Fatalf("customer %s holds %d grants, want at most 1", customer, len(cust.Grants))
		}
	}
}

// TestScriptsOutlastTheClientsRedirects runs check-redeem-release cycles
// through a cluster client that follows no redirect itself (MaxRedirects
// -1) on a customer whose slot first moves behind the client's cached slot
// map (MOVED), then sits half-migrated (TRYAGAIN, until the test finishes
// the migration). The store must ride out both: each reply proves the
// script did not run, so sending it again is safe, and how well a check
// survives a reshard must not depend on how the client was built, nor on
// whether the calls are autopipelined.
func TestScriptsOutlastTheClientsRedirects(t *testing.T) {
	for _, opts := range []redisstore.Options{{}, {AutoPipeline: true}} {
		t.Run(map[bool]string{false: "alone", true: "autopipelined"}[opts.AutoPipeline], func(t *testing.T) {
			testScriptsOutlastTheClientsRedirects(t, opts)
		})
	}
}

func testScriptsOutlastTheClientsRedirects(t *testing.T, opts redisstore.Options) {
	c := sharedCluster(t)
	ctx := context.Background()
	admin := c.Client(t)
	const customer = "RD-1"
	slot := admin.ClusterKeySlot(ctx, "arb:{"+customer+"}:meta").Val()
	src := c.Master(t, "arb:{"+customer+"}:meta")
	dst := c.Master(t, otherMasterKey(t, c, src))

	var moved atomic.Int64
	tryAgain := make(chan struct{}, 1)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), MaxRedirects: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(replyHook(func(err error) {
		switch {
		case isMovedErr(err):
			moved.Add(1)
		case redis.IsTryAgainError(err):
			select {
			case tryAgain <- struct{}{}:
			default:
			}
		}
	}))
	s := redisstore.New(rdb, opts)
	if err := cycle(s, customer); err != nil { // also loads the client's slot map
		t.Fatal(err)
	}

	migrate := beginMigration(t, admin, slot, src, dst)
	migrate.finish(t)
	if err := cycle(s, customer); err != nil {
		t.Fatalf("after the slot moved: %v", err)
	}
	if moved.Load() == 0 {
		t.Fatal("no MOVED reply reached the client: the slot map was not stale")
	}

	back := beginMigration(t, admin, slot, dst, src)
	done := make(chan error, 1)
	go func() { done <- cycle(s, customer) }()
	select {
	case <-tryAgain:
	case err := <-done:
		t.Fatalf("the cycle ended (%v) before any TRYAGAIN: the slot was not half-migrated", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no TRYAGAIN within 10 s")
	}
	back.finish(t)
	if err := <-done; err != nil {
		t.Fatalf("across a migration: %v", err)
	}
	if got := c.Master(t, "arb:{"+customer+"}:meta"); got != src {
		t.Fatalf("slot %d ended on %s, want %s", slot, got.Addr, src.Addr)
	}
}

// replyHook calls f with the error of every command the client sends.
type replyHook func(error)

func (h replyHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h replyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h(cmd.Err())
		return err
	}
}
func (h replyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			h(cmd.Err())
		}
		return err
	}
}

func isMovedErr(err error) bool { _, ok := redis.IsMovedError(err); return ok }

// migration is one slot in the middle of moving between two masters, as
// redis-cli --cluster reshard leaves it between its steps: IMPORTING on the
// target, MIGRATING on the source, none of its keys moved yet.
type migration struct {
	admin    *redis.ClusterClient
	slot     int64
	from, to *redistest.Server
	toID     string
}

func beginMigration(t *testing.T, admin *redis.ClusterClient, slot int64, from, to *redistest.Server) migration {
	t.Helper()
	m := migration{admin: admin, slot: slot, from: from, to: to, toID: nodeID(t, to)}
	node(t, to).mustDo(t, "cluster", "setslot", slot, "importing", nodeID(t, from))
	node(t, from).mustDo(t, "cluster", "setslot", slot, "migrating", m.toID)
	return m
}

// finish moves every key of the slot, then hands the slot to the target
// on the target first, then on every master, as redis-cli does.
func (m migration) finish(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	from := node(t, m.from)
	for {
		keys, err := from.ClusterGetKeysInSlot(ctx, int(m.slot), 100).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"migrate", "127.0.0.1", m.to.Port, "", 0, 5000, "keys"}
		for _, k := range keys {
			args = append(args, k)
		}
		from.mustDo(t, args...)
	}
	node(t, m.to).mustDo(t, "cluster", "setslot", m.slot, "node", m.toID)
	err := m.admin.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.Do(ctx, "cluster", "setslot", m.slot, "node", m.toID).Err()
	})
	if err != nil {
		t.Fatalf("hand slot %d to %s: %v", m.slot, m.to.Addr, err)
	}
}

type nodeClient struct{ *redis.Client }

func node(t *testing.T, s *redistest.Server) nodeClient {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return nodeClient{rdb}
}

func (n nodeClient) mustDo(t *testing.T, args ...any) {
	t.Helper()
	if err := n.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("%v on %s: %v", args, n.Options().Addr, err)
	}
}

// cycle checks, redeems and releases a credit card for customer.
func cycle(s *redisstore.Store, customer string) error {
	ctx, now := context.Background(), time.Now()
	c, _, err := s.Hold(ctx, holdRequestNoTB(customer, "credit_card", now))
	if err != nil {
		return fmt.Errorf("hold: %w", err)
	}
	if _, _, err := redeemToken(s, c, "card-service", now); err != nil {
		return fmt.Errorf("redeem: %w", err)
	}
	if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: customer, Product: "credit_card", Actor: "card-service", Now: now}); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

func holdRequestNoTB(customer, product string, now time.Time) validation.HoldRequest {
	id, err := validation.NewCheckID(customer)
	if err != nil {
		panic(err)
	}
	return validation.HoldRequest{
		Rule: rule(nil, product), CustomerID: customer, CheckID: id,
		Secret: []byte("0123456789abcdefghij"), Actor: "card-service", Now: now,
	}
}

// otherMasterKey returns a key served by a master other than m.
func otherMasterKey(tb testing.TB, c *redistest.Cluster, m *redistest.Server) string {
	tb.Helper()
	for i := 0; i < 1000; i++ {
		k := fmt.Sprintf("arb:{other-%d}:meta", i)
		if c.Master(tb, k) != m {
			return k
		}
	}
	tb.Fatal("every key lives on one master")
	return ""
}

func nodeID(tb testing.TB, n *redistest.Server) string {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: n.Addr})
	defer rdb.Close()
	id, err := rdb.Do(context.Background(), "cluster", "myid").Text()
	if err != nil {
		tb.Fatalf("CLUSTER MYID on %s: %v", n.Addr, err)
	}
	return id
}

// firstSlot returns the lowest slot the master at addr serves.
func firstSlot(tb testing.TB, rdb *redis.ClusterClient, addr string) int64 {
	tb.Helper()
	slots, err := rdb.ClusterSlots(context.Background()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	low := int64(-1)
	for _, r := range slots {
		if len(r.Nodes) > 0 && r.Nodes[0].Addr == addr && (low < 0 || int64(r.Start) < low) {
			low = int64(r.Start)
		}
	}
	if low < 0 {
		tb.Fatalf("%s serves no slot", addr)
	}
	return low
}

// redirects sums the MOVED, ASK and TRYAGAIN replies every running node has
// sent (INFO errorstats).
func redirects(tb testing.TB, c *redistest.Cluster) map[string]int64 {
	tb.Helper()
	sum := map[string]int64{}
	for _, n := range c.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr})
		info, err := rdb.Info(context.Background(), "errorstats").Result()
		rdb.Close()
		if err != nil {
			continue // a killed node
		}
		for line := range strings.Lines(info) {
			var name string
			var count int64
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "errorstat_")
			if !ok {
				continue
			}
			name, rest, _ = strings.Cut(rest, ":count=")
			if _, err := fmt.Sscan(rest, &count); err == nil {
				sum[name] += count
			}
		}
	}
	return sum
}

func tail(s string) string {
	if lines := strings.Split(s, "\n"); len(lines) > 30 {
		return strings.Join(lines[len(lines)-30:], "\n")
	}
	return s
}
