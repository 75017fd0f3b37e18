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
// with and without WAIT: one cluster for the whole package (creating one
// takes seconds), flushed before each test and used by one test at a time.
func init() {
	backends["cluster"] = func(tb testing.TB) backend { return clusterBackend(tb, redisstore.Options{}) }
	backends["cluster-wait1"] = func(tb testing.TB) backend {
		return clusterBackend(tb, redisstore.Options{WaitReplicas: 1, WaitTimeout: time.Second})
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
// customers living in those slots, half of them with WAIT 1. Every
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
		s := plain
		if i%2 == 1 {
			s = durable
		}
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
