package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestFailoverSentinel runs the race load through two arbiter instances
// that find the master through three Sentinels (ARBITER_REDIS_SENTINEL_MASTER,
// WAIT 1), SIGKILLs the master, lets the Sentinels promote the replica and
// brings the old master back, which the Sentinels demote to a replica. It
// checks what the Cluster suite checks (no double grant, no acknowledged
// grant lost, a Porcupine-accepted history), that clients saw 503 with
// Retry-After while there was no durable master, and that grants resume
// without restarting arbiter. It logs the election time as clients see it.
func TestFailoverSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection is not short")
	}
	s := redistest.MustStartSentinels(t)
	env := faultEnv(t, s.URL(), 1)
	env["ARBITER_REDIS_SENTINEL_MASTER"] = redistest.SentinelMasterName
	customers := make([]string, faultCustomers)
	for i := range customers {
		customers[i] = fmt.Sprintf("S-%d", i)
	}
	l := newFaultLoadOn(t, env, 2)
	seen := &answers{next: l.client.Transport}
	l.client.Transport = seen
	stop := l.run(t, customers)
	l.waitAcked(t, 60)

	victim := s.Master(t)
	victim.Kill()
	killed := time.Now()
	promoted := s.WaitMaster(t, victim)
	elected := time.Now()
	victim.Restart(t)
	s.WaitHealthy(t) // the Sentinels demoted the old master; it is in sync
	rejoined := time.Now()
	// A redemption answered not_durable is recorded on the master, but its
	// worker gives up after 5 s without releasing it, so by now every busy
	// customer may hold a product for good: recovery is shown on fresh
	// customers, through the same arbiter instances.
	stop()
	fresh := make([]string, faultCustomers)
	for i := range fresh {
		fresh[i] = fmt.Sprintf("S-after-%d", i)
	}
	stop = l.run(t, fresh)
	l.waitAcked(t, 60)
	stop()
	customers = append(customers, fresh...)

	election := seen.between(killed, elected)
	noReplica := seen.between(elected, rejoined)
	after := seen.between(rejoined, time.Now())
	firstCheck, firstGrant := seen.firstAfter(killed, "/v1/checks"), seen.firstAfter(killed, "/v1/redemptions")
	t.Logf("Sentinels promoted %s %v after the kill; old master back as a replica after %v",
		promoted.Addr, elected.Sub(killed).Round(time.Millisecond), rejoined.Sub(killed).Round(time.Millisecond))
	t.Logf("first 201 check sent after the kill: %v; first 201 redemption: %v", firstCheck.Sub(killed).Round(time.Millisecond), firstGrant.Sub(killed).Round(time.Millisecond))
	t.Logf("election: %s; no replica: %s; after the rejoin: %s", election, noReplica, after)

	r := l.verify(t, "sentinel-wait1", customers)
	if r.AckedGrants < 60 {
		t.Fatalf("only %d acknowledged grants: the load did not run", r.AckedGrants)
	}
	if r.DoubleGrants != 0 || r.LostGrants != 0 {
		t.Fatalf("double grants %d, lost grants %d; want 0 and 0", r.DoubleGrants, r.LostGrants)
	}
	if r.PorcupineResult != string(porcupine.Ok) {
		t.Fatalf("porcupine: %s (visualisation: %s)", r.PorcupineResult, r.PorcupineArtifact)
	}
	if election.unavailable == 0 {
		t.Errorf("no 503 unavailable while the Sentinels elected a master: %s", election)
	}
	if noReplica.notDurable == 0 {
		t.Errorf("no 503 not_durable while the new master had no replica (WAIT 1): %s", noReplica)
	}
	if all := seen.between(time.Time{}, time.Now()); all.noRetryAfter != 0 || all.other5xx != 0 {
		t.Errorf("want every 5xx a 503 with Retry-After: %s", all)
	}
	if after.grants == 0 || firstGrant.Before(elected) {
		t.Errorf("grants did not resume on the new master without restarting arbiter (first after the kill at %v): %s",
			firstGrant.Sub(killed), after)
	}
}

// answers is an http.RoundTripper that records when each answer arrived,
// its status and its problem reason, for the test to count by phase.
type answers struct {
	next http.RoundTripper

	mu   sync.Mutex
	seen []answer
}

type answer struct {
	sent, at      time.Time
	path, reason  string
	status        int
	hasRetryAfter bool
}

func (a *answers) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := a.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if err != nil {
		return resp, nil // the load sees a truncated body and counts it unknown
	}
	var problem struct{ Reason string }
	_ = json.Unmarshal(data, &problem)
	a.mu.Lock()
	a.seen = append(a.seen, answer{
		sent: sent, at: time.Now(), path: req.URL.Path, reason: problem.Reason, status: resp.StatusCode,
		hasRetryAfter: resp.Header.Get("Retry-After") != "",
	})
	a.mu.Unlock()
	return resp, nil
}

// phase counts the answers of one time window.
type phase struct {
	answers, grants, unavailable, notDurable, other503, noRetryAfter, other5xx int
}

func (p phase) String() string {
	return fmt.Sprintf("%d answers, %d grants (201 redemptions), 503: %d unavailable + %d not_durable + %d other, %d 5xx without Retry-After, %d other 5xx",
		p.answers, p.grants, p.unavailable, p.notDurable, p.other503, p.noRetryAfter, p.other5xx)
}

// between counts the answers that arrived in [from, to).
func (a *answers) between(from, to time.Time) phase {
	a.mu.Lock()
	defer a.mu.Unlock()
	var p phase
	for _, s := range a.seen {
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		p.answers++
		switch {
		case s.status == http.StatusCreated && s.path == "/v1/redemptions":
			p.grants++
		case s.status == http.StatusServiceUnavailable && s.reason == "unavailable":
			p.unavailable++
		case s.status == http.StatusServiceUnavailable && s.reason == "not_durable":
			p.notDurable++
		case s.status == http.StatusServiceUnavailable:
			p.other503++
		case s.status >= 500:
			p.other5xx++
		}
		if s.status >= 500 && !s.hasRetryAfter {
			p.noRetryAfter++
		}
	}
	return p
}

// firstAfter returns when the first 201 on path to a request sent after t
// arrived, or the zero time if none did.
func (a *answers) firstAfter(t time.Time, path string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.seen {
		if s.sent.After(t) && s.path == path && s.status == http.StatusCreated {
			return s.at
		}
	}
	return time.Time{}
}
