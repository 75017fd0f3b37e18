package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster shape and timing. cluster-node-timeout is short so that a killed
// master's replica is promoted within a couple of seconds.
const (
	ClusterMasters     = 3
	ClusterNodeTimeout = 1000 * time.Millisecond
	// clusterReadyTimeout bounds creation and every wait for a healthy cluster.
	clusterReadyTimeout = 30 * time.Second
)

// redisCLICandidates lists where to look for redis-cli, as for redis-server.
var redisCLICandidates = []string{"redis-cli", "/usr/bin/redis-cli"}

// errRedisMissing marks a cluster start that failed because redis-server or
// redis-cli is not installed.
var errRedisMissing = errors.New("redis-server or redis-cli not found")

// Cluster is a real Redis Cluster on loopback: ClusterMasters masters with
// one replica each, one redis-server process per node, without persistence
// unless extra arguments ask for it. Which node is a master changes with
// failovers; ask Master/ReplicaOf rather than assuming an order.
type Cluster struct {
	// Nodes are the six servers; Addr, Port and Dir of each stay the same
	// across Kill and Restart, and a restarted node rejoins the cluster
	// (its nodes.conf lives in Dir).
	Nodes []*Server

	tmp string // parent of the nodes' directories, removed by Close
}

// MustStartCluster starts a 3-master / 3-replica cluster (redis-server
// --cluster-enabled yes, then redis-cli --cluster create --cluster-replicas 1),
// waits until every slot is served and every replica is in sync, and stops
// every node when the test ends. extraArgs are added to every node's command
// line. Missing binaries skip the test, or fail it when ARBITER_REQUIRE_REDIS
// is set, as MustStartRedis does.
func MustStartCluster(tb testing.TB, extraArgs ...string) *Cluster {
	tb.Helper()
	c, err := StartCluster(extraArgs...)
	if errors.Is(err, errRedisMissing) {
		SkipOrFailMissing(tb, err)
		return nil
	}
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, n := range c.Nodes {
				tb.Logf("cluster node %s output (tail):\n%s", n.Addr, tail(n.output(), 2000))
			}
		}
		c.Close()
	})
	return c
}

// SkipOrFailMissing reports that redis-server (or redis-cli) is missing:
// it fails the test when ARBITER_REQUIRE_REDIS is set and skips it otherwise.
func SkipOrFailMissing(tb testing.TB, err error) {
	tb.Helper()
	fatal, msg := missingRedisAction(os.Getenv(RequireRedisEnv) != "")
	if fatal {
		tb.Fatalf("%s (%v)", msg, err)
	}
	tb.Skip(msg)
}

// IsRedisMissing reports whether a StartCluster error means that redis-server
// or redis-cli is not installed.
func IsRedisMissing(err error) bool { return errors.Is(err, errRedisMissing) }

// StartCluster is MustStartCluster for callers without a test, such as a
// TestMain sharing one cluster between tests: the caller must call Close.
// IsRedisMissing tells a missing binary from other failures.
func StartCluster(extraArgs ...string) (*Cluster, error) {
	bin, err := findRedisServer()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRedisMissing, err)
	}
	cli, err := findBinary(redisCLICandidates)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRedisMissing, err)
	}
	tmp, err := os.MkdirTemp("", "arbiter-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{tmp: tmp}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	args := append([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
		// Replicas sync at once instead of after the default 5 s pause.
		"--repl-diskless-sync-delay", "0",
	}, extraArgs...)
	for i := range 2 * ClusterMasters {
		n, err := startClusterNode(bin, fmt.Sprintf("%s/node%d", tmp, i), args)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	create := append([]string{"--cluster", "create"}, c.Addrs()...)
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, create...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitHealthy(ctx, len(c.Nodes)); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// startClusterNode starts one node on free client and bus ports, trying
// other ports when one was taken in the meantime.
func startClusterNode(bin, dir string, args []string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin}
	var failures []string
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		bus, err := freePort()
		if err != nil {
			return nil, err
		}
		s.setPort(port, append([]string{"--cluster-port", strconv.Itoa(bus)}, args...))
		err = s.start()
		if err == nil {
			return s, nil
		}
		failures = append(failures, fmt.Sprintf("port %d/%d: %v\n%s", port, bus, err, s.output()))
	}
	return nil, fmt.Errorf("cluster node did not start:\n%s", strings.Join(failures, "\n"))
}

func findBinary(candidates []string) (string, error) {
	var errs []error
	for _, c := range candidates {
		p, err := exec.LookPath(c)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// Close kills every node and removes their directories. It is safe to call
// more than once.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Kill()
	}
	if c.tmp != "" {
		_ = os.RemoveAll(c.tmp)
	}
}

// Addrs returns every node's host:port, seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// URL returns the cluster as one URL in go-redis's ParseClusterURL form:
// redis://first?addr=second&addr=third...
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Client returns a cluster client seeded with every node, closed when the
// test ends. It follows MOVED and ASK redirects and failovers on its own.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// WaitHealthy waits until every running node reports cluster_state:ok with
// all 16384 slots served, each running replica's link to its master is up,
// and running nodes count up to want (masters plus replicas). It fails the
// test after 30 s.
func (c *Cluster) WaitHealthy(tb testing.TB, want int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	if err := c.waitHealthy(ctx, want); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
}

func (c *Cluster) waitHealthy(ctx context.Context, want int) error {
	var last error
	for {
		if last = c.healthy(ctx, want); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy in time: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context, want int) error {
	masters, replicas := 0, 0
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		info, err := nodeCmd(ctx, n, "cluster", "info")
		if err != nil {
			return fmt.Errorf("%s: %v", n.Addr, err)
		}
		for _, f := range []string{"cluster_state:ok", "cluster_slots_ok:16384"} {
			if !strings.Contains(info, f) {
				return fmt.Errorf("%s: CLUSTER INFO lacks %s", n.Addr, f)
			}
		}
		repl, err := nodeCmd(ctx, n, "info", "replication")
		if err != nil {
			return fmt.Errorf("%s: %v", n.Addr, err)
		}
		switch {
		case strings.Contains(repl, "role:master"):
			masters++
		case strings.Contains(repl, "master_link_status:up") && !strings.Contains(repl, "master_sync_in_progress:1"):
			replicas++
		default:
			return fmt.Errorf("%s: replica not in sync yet", n.Addr)
		}
	}
	if masters != ClusterMasters || masters+replicas != want {
		return fmt.Errorf("%d masters and %d replicas in sync, want %d and %d", masters, replicas, ClusterMasters, want-ClusterMasters)
	}
	return nil
}

// Master returns the node that currently serves key's slot as a master,
// asking the running nodes. It fails the test if none does.
func (c *Cluster) Master(tb testing.TB, key string) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		if m := c.masterVia(ctx, n, key); m != nil {
			return m
		}
	}
	tb.Fatalf("redistest: no running node knows the master of %q", key)
	return nil
}

// masterVia asks n which node serves key's slot as a master.
func (c *Cluster) masterVia(ctx context.Context, n *Server, key string) *Server {
	rdb := redis.NewClient(&redis.Options{Addr: n.Addr, DisableIdentity: true, MaxRetries: -1})
	defer rdb.Close()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil
	}
	ranges, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return nil
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
			return c.node(r.Nodes[0].Addr)
		}
	}
	return nil
}

// ReplicaOf returns the node replicating master, asking master itself. It
// fails the test if master has no replica.
func (c *Cluster) ReplicaOf(tb testing.TB, master *Server) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	repl, err := nodeCmd(ctx, master, "info", "replication")
	if err != nil {
		tb.Fatalf("redistest: INFO replication on %s: %v", master.Addr, err)
	}
	for line := range strings.Lines(repl) {
		// slave0:ip=127.0.0.1,port=7001,state=online,offset=..,lag=0
		if !strings.HasPrefix(line, "slave") || !strings.Contains(line, "port=") {
			continue
		}
		for f := range strings.SplitSeq(strings.TrimSpace(line[strings.Index(line, ":")+1:]), ",") {
			if p, ok := strings.CutPrefix(f, "port="); ok {
				if n := c.node("127.0.0.1:" + p); n != nil {
					return n
				}
			}
		}
	}
	tb.Fatalf("redistest: %s has no replica:\n%s", master.Addr, repl)
	return nil
}

func (c *Cluster) node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// running reports whether the server's current process is alive.
func (s *Server) running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// nodeCmd runs one command on one node over a fresh connection and returns
// its reply as text.
func nodeCmd(ctx context.Context, n *Server, args ...any) (string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: n.Addr, DisableIdentity: true, MaxRetries: -1})
	defer rdb.Close()
	return rdb.Do(ctx, args...).Text()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
