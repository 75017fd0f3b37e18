package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel shape and timing. down-after-milliseconds is short so that a
// killed master is replaced within a few seconds; failover-timeout bounds
// how long a stuck failover blocks the next attempt.
const (
	SentinelMasterName = "arbiter"
	SentinelQuorum     = 2
	SentinelDownAfter  = 1000 * time.Millisecond
	sentinelFailover   = 5000 * time.Millisecond
	// sentinelLinkedFailover is MustStartSentinelsLinked's failover-timeout.
	sentinelLinkedFailover = 10 * time.Minute
	sentinelCount          = 3
	// sentinelReadyTimeout bounds every wait for a healthy set. A killed
	// master that comes back is demoted by the Sentinels only once it has
	// been up for 8 s (4 hello periods) and reported its role to them, so a
	// rejoin takes 10–20 s.
	sentinelReadyTimeout = 40 * time.Second
)

// redisSentinelCandidates lists where to look for redis-sentinel (Debian's
// redis-sentinel package); without it redis-server --sentinel is used.
var redisSentinelCandidates = []string{"redis-sentinel", "/usr/bin/redis-sentinel"}

// Sentinels is a real Sentinel-managed replication set on loopback: two
// redis-server data nodes (a master and one replica) and three
// redis-sentinel processes monitoring them under SentinelMasterName with
// quorum 2, without persistence unless extra arguments ask for it. Which data
// node is the master changes with failovers: ask Master.
type Sentinels struct {
	// Nodes are the two data nodes, Nodes[0] the first master. Addr, Port
	// and Dir stay the same across Kill and Restart; a restarted node comes
	// back as a master and the Sentinels demote it to a replica.
	Nodes []*Server
	// Sentinels are the three Sentinel processes; each rewrites its own
	// sentinel.conf in its Dir.
	Sentinels []*Server
	// ReplicaLink, set by MustStartSentinelsLinked, carries the first
	// replica's replication stream from Nodes[0] until a failover; a test
	// stalls or cuts it as a partition would.
	ReplicaLink *Link
}

// MustStartSentinelsLinked is MustStartSentinels with the replica
// replicating from the first master through a Link (ReplicaLink), so a
// test can stall replication without either process noticing and then
// lose what the link held. After a failover the Sentinels point replicas
// at masters directly; the link matters until then.
func MustStartSentinelsLinked(tb testing.TB, extraArgs ...string) *Sentinels {
	tb.Helper()
	return mustStartSentinels(tb, true, extraArgs)
}

// MustStartSentinels starts a master, a replica of it (--replicaof) and
// three Sentinels, waits until the replica is in sync and every Sentinel
// sees the replica and the two other Sentinels, and stops everything when
// the test ends. extraArgs are added to the data nodes' command lines.
// Missing binaries skip the test, or fail it when ARBITER_REQUIRE_REDIS is
// set, as MustStartRedis does.
func MustStartSentinels(tb testing.TB, extraArgs ...string) *Sentinels {
	tb.Helper()
	return mustStartSentinels(tb, false, extraArgs)
}

func mustStartSentinels(tb testing.TB, linked bool, extraArgs []string) *Sentinels {
	tb.Helper()
	bin, err := findRedisServer()
	if err != nil {
		SkipOrFailMissing(tb, err)
		return nil
	}
	sentinelBin, sentinelArgs := bin, []string{"--sentinel"}
	if p, err := findBinary(redisSentinelCandidates); err == nil {
		sentinelBin, sentinelArgs = p, nil
	}
	s := &Sentinels{}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, n := range append(append([]*Server{}, s.Nodes...), s.Sentinels...) {
				tb.Logf("redis %s output (tail):\n%s", n.Addr, tail(n.output(), 3000))
			}
		}
		for _, n := range append(append([]*Server{}, s.Sentinels...), s.Nodes...) {
			n.Kill()
		}
	})
	root := tb.TempDir()
	args := append([]string{"--repl-diskless-sync-delay", "0"}, extraArgs...)
	master := mustStartNode(tb, bin, filepath.Join(root, "node0"), func(n *Server) []string { return append(n.args, args...) })
	s.Nodes = append(s.Nodes, master)
	upstream, failover := master.Port, sentinelFailover
	if linked {
		// A Sentinel points a replica that replicates from another
		// address than the master's at the master itself once
		// failover-timeout has passed (+fix-slave-config), which would
		// bypass the link: keep it longer than any test.
		failover = sentinelLinkedFailover
		s.ReplicaLink = StartLink(tb, master.Addr)
		upstream = s.ReplicaLink.Port
	}
	s.Nodes = append(s.Nodes, mustStartNode(tb, bin, filepath.Join(root, "node1"), func(n *Server) []string {
		return append(append(n.args, "--replicaof", "127.0.0.1", strconv.Itoa(upstream)), args...)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), sentinelReadyTimeout)
	defer cancel()
	if err := waitFor(ctx, func() error { return s.replicasInSync(ctx, master, 1) }); err != nil {
		tb.Fatalf("redistest: replica not in sync: %v", err)
	}
	for i := range sentinelCount {
		dir := filepath.Join(root, fmt.Sprintf("sentinel%d", i))
		s.Sentinels = append(s.Sentinels, mustStartNode(tb, sentinelBin, dir, func(n *Server) []string {
			return sentinelCommandLine(tb, n, master, failover, sentinelArgs)
		}))
	}
	s.WaitHealthy(tb)
	return s
}

// mustStartNode starts one process in dir on a free port, trying other
// ports when one was taken meanwhile; args returns the whole command line
// after the binary, given the node with setPort's defaults in n.args.
func mustStartNode(tb testing.TB, bin, dir string, args func(*Server) []string) *Server {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	n := &Server{Dir: dir, bin: bin}
	var failures []string
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: find a free port: %v", err)
		}
		n.setPort(port, nil)
		n.args = args(n)
		if err = n.start(); err == nil {
			return n
		}
		failures = append(failures, fmt.Sprintf("port %d: %v\n%s", port, err, n.output()))
	}
	tb.Fatalf("redistest: %s did not start:\n%s", filepath.Base(bin), strings.Join(failures, "\n"))
	return nil
}

// sentinelCommandLine writes n's sentinel.conf (Sentinel refuses to run
// without a writable config file: it records the current master, replicas
// and peers there) and returns the command line that runs it.
func sentinelCommandLine(tb testing.TB, n, master *Server, failover time.Duration, modeArgs []string) []string {
	tb.Helper()
	name := SentinelMasterName
	conf := strings.Join([]string{
		"port " + strconv.Itoa(n.Port),
		"bind 127.0.0.1",
		"dir " + n.Dir,
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", name, master.Port, SentinelQuorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, SentinelDownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", name, failover.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", name),
		"",
	}, "\n")
	path := filepath.Join(n.Dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	return append([]string{path}, append(modeArgs, "--daemonize", "no")...)
}

// URL returns the Sentinels in go-redis's ParseFailoverURL form,
// redis://sentinel1?addr=sentinel2&addr=sentinel3, the form arbiter reads
// with ARBITER_REDIS_SENTINEL_MASTER set.
func (s *Sentinels) URL() string {
	u := "redis://" + s.Sentinels[0].Addr
	for i, n := range s.Sentinels[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

// Master returns the data node that a quorum of the running Sentinels
// names as the master and that itself reports role:master. It fails the
// test if there is none.
func (s *Sentinels) Master(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := s.master(ctx)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return m
}

// WaitMaster waits until the Sentinels agree on a master other than old and
// that node is a master, and returns it. It fails the test after 40 s.
func (s *Sentinels) WaitMaster(tb testing.TB, old *Server) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sentinelReadyTimeout)
	defer cancel()
	var m *Server
	err := waitFor(ctx, func() error {
		var err error
		if m, err = s.master(ctx); err == nil && m == old {
			err = fmt.Errorf("the Sentinels still name %s", old.Addr)
		}
		return err
	})
	if err != nil {
		tb.Fatalf("redistest: no new master: %v", err)
	}
	return m
}

// WaitHealthy waits until the Sentinels agree on a master, every other data
// node is its replica and in sync, and every Sentinel sees all the replicas
// and the two other Sentinels. It fails the test after 40 s.
func (s *Sentinels) WaitHealthy(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sentinelReadyTimeout)
	defer cancel()
	if err := waitFor(ctx, func() error { return s.healthy(ctx) }); err != nil {
		tb.Fatalf("redistest: Sentinels not healthy: %v", err)
	}
}

func (s *Sentinels) healthy(ctx context.Context) error {
	m, err := s.master(ctx)
	if err != nil {
		return err
	}
	if err := s.replicasInSync(ctx, m, len(s.Nodes)-1); err != nil {
		return err
	}
	for _, sn := range s.Sentinels {
		info, err := sentinelMasterInfo(ctx, sn)
		if err != nil {
			return err
		}
		if got, want := info["num-other-sentinels"], strconv.Itoa(len(s.Sentinels)-1); got != want {
			return fmt.Errorf("sentinel %s sees %s other Sentinels, want %s", sn.Addr, got, want)
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, DisableIdentity: true, MaxRetries: -1})
		replicas, err := sc.Replicas(ctx, SentinelMasterName).Result()
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL REPLICAS: %v", sn.Addr, err)
		}
		up := 0
		for _, r := range replicas {
			if !strings.Contains(r["flags"], "down") && r["master-link-status"] == "ok" {
				up++
			}
		}
		if up != len(s.Nodes)-1 {
			return fmt.Errorf("sentinel %s sees %d replicas up, want %d: %v", sn.Addr, up, len(s.Nodes)-1, replicas)
		}
	}
	return nil
}

// master asks every running Sentinel for the master's address and returns
// the data node a quorum agrees on, provided it reports role:master.
func (s *Sentinels) master(ctx context.Context) (*Server, error) {
	votes := map[string]int{}
	for _, sn := range s.Sentinels {
		if !sn.running() {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, DisableIdentity: true, MaxRetries: -1})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMasterName).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			votes[hp[0]+":"+hp[1]]++
		}
	}
	for addr, n := range votes {
		if n < SentinelQuorum {
			continue
		}
		for _, d := range s.Nodes {
			if d.Addr != addr || !d.running() {
				continue
			}
			repl, err := nodeCmd(ctx, d, "info", "replication")
			if err != nil {
				return nil, fmt.Errorf("%s: %v", d.Addr, err)
			}
			if !strings.Contains(repl, "role:master") {
				return nil, fmt.Errorf("the Sentinels name %s, which is not a master yet", addr)
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("no running master named by %d Sentinels: %v", SentinelQuorum, votes)
}

// replicasInSync checks that m has want replicas online and that each is
// linked and not syncing.
func (s *Sentinels) replicasInSync(ctx context.Context, m *Server, want int) error {
	up := 0
	for _, d := range s.Nodes {
		if d == m || !d.running() {
			continue
		}
		repl, err := nodeCmd(ctx, d, "info", "replication")
		if err != nil {
			return fmt.Errorf("%s: %v", d.Addr, err)
		}
		linked := s.ReplicaLink != nil && m == s.Nodes[0] && strings.Contains(repl, "master_port:"+strconv.Itoa(s.ReplicaLink.Port)+"\r\n")
		if !(linked || strings.Contains(repl, "master_port:"+strconv.Itoa(m.Port)+"\r\n")) ||
			!strings.Contains(repl, "master_link_status:up") || strings.Contains(repl, "master_sync_in_progress:1") {
			return fmt.Errorf("%s is not an in-sync replica of %s", d.Addr, m.Addr)
		}
		up++
	}
	if up != want {
		return fmt.Errorf("%s has %d replicas in sync, want %d", m.Addr, up, want)
	}
	return nil
}

// sentinelMasterInfo returns SENTINEL MASTER's fields as seen by sn.
func sentinelMasterInfo(ctx context.Context, sn *Server) (map[string]string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, DisableIdentity: true, MaxRetries: -1})
	defer sc.Close()
	info, err := sc.Master(ctx, SentinelMasterName).Result()
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: SENTINEL MASTER: %v", sn.Addr, err)
	}
	return info, nil
}

// waitFor polls cond until it returns nil or ctx ends, and then returns
// cond's last error.
func waitFor(ctx context.Context, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
