package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCluster starts the 3+3 cluster, proves that data written through a
// cluster client lands on the master Master names and on the replica
// ReplicaOf names, then kills that master: its replica must take over with
// the data, and the old master must rejoin as a replica after Restart.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := MustStartCluster(t)
	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	rdb := c.Client(t)

	if got, want := len(c.Nodes), 2*ClusterMasters; got != want {
		t.Fatalf("nodes = %d, want %d", got, want)
	}
	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("ParseClusterURL(%q): %v", c.URL(), err)
	}
	if got, want := fmt.Sprint(opt.Addrs), fmt.Sprint(c.Addrs()); got != want {
		t.Fatalf("URL addrs = %s, want %s", got, want)
	}

	const key = "arb:{C-1}:grants"
	if err := rdb.HSet(ctx, key, "chk", "g").Err(); err != nil {
		t.Fatalf("HSET through the cluster client: %v", err)
	}
	master := c.Master(t, key)
	replica := c.ReplicaOf(t, master)
	if master == replica {
		t.Fatalf("master %s is its own replica", master.Addr)
	}
	direct := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer direct.Close()
	if got, err := direct.HGet(ctx, key, "chk").Result(); err != nil || got != "g" {
		t.Fatalf("HGET on master %s = %q, %v; want g", master.Addr, got, err)
	}
	if n, err := direct.Wait(ctx, 1, 2*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on master = %d, %v; want 1", n, err)
	}

	master.Kill()
	c.WaitHealthy(t, 2*ClusterMasters-1)
	if got := c.Master(t, key); got != replica {
		t.Fatalf("after the kill the master of %s is %s, want its replica %s", key, got.Addr, replica.Addr)
	}
	// The client learns of the failover when it reloads its slot map.
	deadline := time.Now().Add(15 * time.Second)
	for {
		rdb.ReloadState(ctx)
		got, err := rdb.HGet(ctx, key, "chk").Result()
		if err == nil && got == "g" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HGET after failover = %q, %v; want g", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	master.Restart(t)
	c.WaitHealthy(t, 2*ClusterMasters)
	if got := c.ReplicaOf(t, replica); got != master {
		t.Fatalf("after restart the replica of %s is %s, want the old master %s", replica.Addr, got.Addr, master.Addr)
	}
}
