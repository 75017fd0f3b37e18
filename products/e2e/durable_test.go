package e2e_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/internal/proctest"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestNoProductOnAGrantAFailoverLoses is the outside audit's first finding,
// as an operator's bad day plays it: arbiter waits for one replica
// (ARBITER_REDIS_WAIT_REPLICAS=1), and the replica's link stalls — no
// error, the bytes just stop (a stalled redistest.Link between them). An online card application is
// answered 503 not_durable and card-service keeps it pending. Its
// reconciliation (here the one it runs at start) then reads the customer
// at arbiter. Then the master dies and the replica is promoted: the grant
// is gone, and a loan application is granted. The card must never have
// been issued on a grant no replica had: the customer ends with the loan
// only.
func TestNoProductOnAGrantAFailoverLoses(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	master := redistest.MustStartRedis(t, "--repl-diskless-sync-delay", "0")
	link := redistest.StartLink(t, master.Addr)
	replica := redistest.MustStartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(link.Port))
	waitReplicaOnline(t, master)

	dir := t.TempDir()
	clients := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(clients, []byte(clientsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.pem")
	writeSigningKey(t, key)
	startArbiter := func(redisURL string) *proctest.Proc {
		p := proctest.Start(t, arbiterBin, []string{"-addr", "127.0.0.1:0", "-redis-url", redisURL,
			"-clients", clients, "-signing-key", key, "-log-level", "error"},
			[]string{"ARBITER_REDIS_WAIT_REPLICAS=1", "ARBITER_REDIS_WAIT_TIMEOUT=200ms"})
		proctest.WaitReady(t, p.URL)
		return p
	}
	s := &system{dir: dir, arbiter: startArbiter(master.URL())}
	s.card = s.startService(t, "credit_card", "card-service", cardKey, "card.db", "")
	s.loan = s.startService(t, "personal_loan", "loan-service", loanKey, "loan.db", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const customer = "DUR-1"

	// The replica stalls; the card application cannot be made durable.
	link.Stall()
	if a := s.card.applyOnline(ctx, customer); a.Status != http.StatusServiceUnavailable {
		t.Fatalf("card application with a stalled replica = %s, want 503 (pending)", a)
	}
	if rows := readDB(t, s.card.db, "pending"); len(rows) != 1 {
		t.Fatalf("card-service pending rows = %v, want the application kept pending", rows)
	}

	// card-service settles its pending work (at start) while the grant
	// exists on the master only.
	s.card.proc.Stop()
	s.card = s.startService(t, "credit_card", "card-service", cardKey, "card.db", "")
	if rows := readDB(t, s.card.db, "products"); len(rows) != 0 {
		t.Errorf("card-service issued %v on a grant no replica has", rows)
	}

	// The master dies, the partition ends the link (what it held is
	// lost) and the replica, which never had the grant, is promoted;
	// arbiter now runs on it.
	master.Kill()
	link.Cut()
	if err := replica.Client(t).SlaveOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatalf("promote the replica: %v", err)
	}
	s.arbiter.Stop()
	s.arbiter = startArbiter(replica.URL())
	// Without a replica of its own the new master cannot make anything
	// durable; a replica joins it, as the operator's runbook would have.
	redistest.MustStartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(replica.Port))
	waitReplicaOnline(t, replica)

	s.loan.proc.Stop()
	s.loan = s.startService(t, "personal_loan", "loan-service", loanKey, "loan.db", "")
	s.card.proc.Stop()
	s.card = s.startService(t, "credit_card", "card-service", cardKey, "card.db", "")
	if a := s.loan.applyOnline(ctx, customer); a.Status != http.StatusCreated {
		t.Fatalf("loan application after the failover = %s, want 201 (the card's grant is gone)", a)
	}
	// card-service settles again, against the promoted master.
	s.card.proc.Stop()
	s.card = s.startService(t, "credit_card", "card-service", cardKey, "card.db", "")

	cards, loans := readDB(t, s.card.db, "products"), readDB(t, s.loan.db, "products")
	if _, ok := cards[customer]; ok {
		if _, ok := loans[customer]; ok {
			t.Fatalf("customer %s holds a credit card (%v) and a personal loan (%v)", customer, cards[customer], loans[customer])
		}
	}
	if _, ok := loans[customer]; !ok {
		t.Fatalf("loan.db = %v, want the loan of %s", loans, customer)
	}
	if rows := readDB(t, s.card.db, "pending"); len(rows) != 0 {
		t.Errorf("card-service pending rows after the failover = %v, want the application dropped (arbiter shows no grant)", rows)
	}
}

// waitReplicaOnline waits until master counts a replica online, which is
// when WAIT starts counting it.
func waitReplicaOnline(tb testing.TB, master *redistest.Server) {
	tb.Helper()
	rdb := master.Client(tb)
	waitFor(tb, 20*time.Second, "replica of "+master.Addr+" online", func() bool {
		info, err := rdb.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "state=online")
	})
}
