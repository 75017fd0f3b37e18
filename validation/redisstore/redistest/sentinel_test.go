package redistest

import (
	"context"
	"testing"
	"time"
)

// TestSentinelsFailover checks the helper itself: the Sentinels elect the
// replica when the master is killed, and it has the master's data. (The
// rejoin of the old master takes 10–20 s; cmd/arbiter's TestFailoverSentinel
// covers it.)
func TestSentinelsFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a failover is not short")
	}
	s := MustStartSentinels(t)
	first := s.Master(t)
	if first != s.Nodes[0] {
		t.Fatalf("master = %s, want the first node %s", first.Addr, s.Nodes[0].Addr)
	}
	ctx := context.Background()
	if err := first.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	first.Kill()
	killed := time.Now()
	second := s.WaitMaster(t, first)
	t.Logf("promoted %s %v after the kill", second.Addr, time.Since(killed).Round(time.Millisecond))
	if got, err := second.Client(t).Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k on the promoted replica = %q, %v; want v", got, err)
	}
}
