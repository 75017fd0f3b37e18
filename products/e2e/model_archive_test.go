package e2e_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/pgarchive"
	"github.com/arbiter-bank/arbiter/validation/pgarchive/pgtest"
)

// Every model run keeps the durable record: arbiter appends each
// decision's events to its slot's outbox, and its exporter (every
// arbiter of the run runs one) sweeps the holds nobody reads and moves the
// outboxes to a real PostgreSQL, every modelExportInterval, so the
// sweeper's settle races the workload's checks and redemptions throughout
// (the holds live 2–3 s). The nemesis stopPostgres takes the archive away
// now and then; the outboxes must buffer meanwhile.
const (
	// Each round asks every slot for its size (2 × 16,384 reads): at
	// 150ms, with two arbiters, that took so much of Redis that the run
	// made a quarter of its operations; 400ms keeps both the workload's
	// volume and the sweeper racing holds of 2–3 s.
	modelExportInterval = 400 * time.Millisecond
	// modelOutboxMax is the outboxes' bound unless the fault model sets
	// one: far above what a slot gathers while PostgreSQL is down, so
	// no decision is refused outbox_full.
	modelOutboxMax = 4096
)

// startArchive starts the run's PostgreSQL and points arbiter at it.
func (m *model) startArchive(t *testing.T, fm faultModel) {
	t.Helper()
	m.pg = pgtest.Start(t)
	m.lossy = fm.lossy
	m.arbiterArgs = append(m.arbiterArgs, "-archive-url", m.pg.DSN(),
		"-export-interval", modelExportInterval.String(),
		"-outbox-max", strconv.Itoa(cmp.Or(fm.outboxMax, modelOutboxMax)))
}

// stopPostgres stops PostgreSQL for 1–4 s at random moments and starts it
// again: the exporters' writes fail, the records wait in the outboxes, and
// decisions go on (or are refused outbox_full, nothing written, once an
// outbox reaches its bound).
func stopPostgres(ctx context.Context, tb testing.TB, m *model, rng *rand.Rand, _ time.Duration) {
	for pause(ctx, time.Duration(2000+rng.IntN(4000))*time.Millisecond) {
		m.pg.Stop(tb)
		m.stats.add("nemesis: postgres stopped")
		pause(ctx, time.Duration(1000+rng.IntN(3000))*time.Millisecond)
		m.pg.Start(tb)
	}
}

// ledger is what the model learnt of arbiter's decisions during the run,
// for the archive's assertions: the checks arbiter placed for the
// branch, and the checks whose grants the services issued products on.
type ledger struct {
	mu     sync.Mutex
	checks map[string]seenCheck // by check id
	grants map[string]string    // check id -> customer
}

// seenCheck is a check arbiter answered the branch with, and what the
// model did with it.
type seenCheck struct {
	customer string
	fate     string // "abandoned", "cancelled" (Cancel succeeded), or the path its credentials took
}

func (l *ledger) check(id, customer, fate string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.checks == nil {
		l.checks = map[string]seenCheck{}
	}
	l.checks[id] = seenCheck{customer: customer, fate: fate}
}

func (l *ledger) grant(customer, checkID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.grants == nil {
		l.grants = map[string]string{}
	}
	l.grants[checkID] = customer
}

// seenHeld adds the products of a snapshot to the ledger's grants: (b)
// says each one's grant exists at arbiter.
func (l *ledger) seenHeld(held map[string]map[string]string) {
	for c, ps := range held {
		for _, id := range ps {
			l.grant(c, id)
		}
	}
}

// archiveAfterQuiescence adds what the services hold after quiescence to
// the ledger, waits for the outboxes to drain, and checks the archive.
func (m *model) archiveAfterQuiescence(t *testing.T) {
	t.Helper()
	held, err := m.snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	m.ledger.seenHeld(held)
	if m.lossy {
		m.forgetLost(t)
	}
	m.archived = m.drainArchive(t)
	m.assertArchive(t, m.archived)
}

// history is the archived record of customer's check id, for a failure
// message of the other invariants.
func (m *model) history(customer, id string) string {
	return fmt.Sprintf("archived: %v", endings(m.archived.events[customer], id))
}

// forgetLost drops from the ledger the checks arbiter no longer knows: a
// check waits for no replica, so the failover may lose it (and with it
// what the archive was to hold of it). A grant a service issued a product
// on was made durable first, so no grant is dropped.
func (m *model) forgetLost(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m.ledger.mu.Lock()
	defer m.ledger.mu.Unlock()
	for id, c := range m.ledger.checks {
		_, err := m.sys.branch.GetCheck(ctx, id)
		var e *client.Error
		switch {
		case errors.As(err, &e) && e.Reason == client.ReasonCheckNotFound:
			delete(m.ledger.checks, id)
			m.lostChecks++
		case err != nil:
			t.Fatalf("arbiter: check %s of %s: %v", id, c.customer, err)
		}
	}
}

// archived is the archive's content for the assertions: each customer's
// records in sequence order, and the conflicts kept aside.
type archived struct {
	events    map[string][]validation.Record
	conflicts []pgarchive.Conflict
}

// readArchive reads every customer's records and the conflicts.
func (m *model) readArchive(ctx context.Context) (archived, error) {
	a, err := pgarchive.Open(ctx, m.pg.DSN(), pgarchive.Options{MaxConns: 2})
	if err != nil {
		return archived{}, err
	}
	defer a.Close()
	out := archived{events: map[string][]validation.Record{}}
	for _, c := range m.customers() {
		if out.events[c], err = a.Events(ctx, c); err != nil {
			return archived{}, err
		}
	}
	out.conflicts, err = a.Conflicts(ctx)
	return out, err
}

// expectations are the records the ledger says the archive must hold,
// each as "<check id> <event type>" (an ending of any kind as "<check id>
// ended"), for customer lookup.
func (l *ledger) expectations(lossy bool) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	want := map[string]string{} // expectation -> customer
	for id, c := range l.checks {
		want[id+" checked"] = c.customer
		switch c.fate {
		case "abandoned":
			// Nobody redeems it, but another application's wrong codes
			// for the customer may lock it.
			want[id+" unredeemed"] = c.customer
		case "cancelled":
			// A cancellation waits for no replica: a failover may lose it,
			// and the hold then expires.
			if lossy {
				want[id+" ended"] = c.customer
			} else {
				want[id+" cancelled"] = c.customer
			}
		default:
			want[id+" ended"] = c.customer
		}
	}
	for id, c := range l.grants {
		want[id+" redeemed"] = c
	}
	return want
}

// facts is what the archive's records of one table say, in the
// expectations' terms: how many records say each. "<id> unredeemed" is an
// expiry, or a lock by wrong codes.
func facts(recs []validation.Record) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		if r.CheckID == "" {
			continue
		}
		out[r.CheckID+" "+string(r.Type)]++
		switch r.Type {
		case validation.EventRedeemed, validation.EventCancelled, validation.EventExpired:
			out[r.CheckID+" ended"]++
		}
		if r.Type == validation.EventExpired || r.Type == validation.EventCancelled && r.Reason == "otp_locked" {
			out[r.CheckID+" unredeemed"]++
		}
	}
	return out
}

// missing returns the expectations the archive does not meet, sorted;
// under a lossy fault model a record kept aside as a conflict meets one.
func (m *model) missing(a archived) []string {
	var all []validation.Record
	for _, recs := range a.events {
		all = append(all, recs...)
	}
	if m.lossy {
		for _, c := range a.conflicts {
			all = append(all, c.Record)
		}
	}
	have := facts(all)
	var out []string
	for e, c := range m.ledger.expectations(m.lossy) {
		if have[e] == 0 {
			out = append(out, c+": "+e)
		}
	}
	slices.Sort(out)
	return out
}

// drainArchive waits, after the nemeses have healed and the services
// have quiesced, until every arbiter's exporter found its outboxes empty
// at its last round (arbiter_outbox_records 0) and the archive holds every
// record the ledger expects (the last holds expire, are swept and
// exported meanwhile); past the deadline it fails with what is missing.
func (m *model) drainArchive(t *testing.T) archived {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		a    archived
		gaps []string
		err  error
	)
	for {
		drained := true
		for _, arb := range m.arbiters() {
			n, err := metricValue(ctx, arb+"/metrics", "arbiter_outbox_records")
			drained = drained && err == nil && n == 0
		}
		if drained {
			var read archived
			if read, err = m.readArchive(ctx); err == nil {
				if a, gaps = read, m.missing(read); len(gaps) == 0 {
					return a
				}
			}
		}
		if !pause(ctx, 100*time.Millisecond) {
			break
		}
	}
	if len(gaps) > 10 {
		gaps = append(gaps[:10], fmt.Sprintf("... %d more", len(gaps)-10))
	}
	for i, g := range gaps {
		if c, e, ok := strings.Cut(g, ": "); ok {
			gaps[i] += fmt.Sprintf(" (archived of the check: %v)", endings(a.events[c], strings.Fields(e)[0]))
		}
	}
	t.Fatalf("archive: not drained within 60s (last read: %v); records the model knows of and the archive lacks:\n  %s",
		err, strings.Join(gaps, "\n  "))
	return a
}

// arbiters returns the base URL of every arbiter of the run.
func (m *model) arbiters() []string {
	urls := []string{m.sys.arbiter.URL}
	if m.skewed != m.sys.arbiter {
		urls = append(urls, m.skewed.URL)
	}
	return urls
}

// assertArchive checks the durable record against the ledger, once the
// outboxes have drained:
//
//	(f) each customer's archived sequence numbers are consecutive: the
//	    archive holds a prefix of every customer's record, nothing
//	    skipped (a record the exporter trimmed without archiving, or a
//	    sequence number a script took without writing its record); the
//	    one jump allowed is up, from the number an expiry of the
//	    customer's meta left (expireIdleMeta), to the clock;
//	(g) every check arbiter placed for the branch has its checked record
//	    and an ending (redeemed, cancelled or expired); a check the model
//	    abandoned has its expired record (often read by nobody: the
//	    sweeper recorded it), or a cancellation otp_locked (another
//	    application's wrong codes for the customer), a check the branch
//	    cancelled its cancelled record;
//	    every grant a service issued a product on has its redeemed record;
//	(h) no check has two endings, nor one ending recorded twice (the
//	    sweeper's settle and a read's settle of the same hold would give
//	    two expired records), and no record was kept aside as a conflict
//	    (an id archived twice with different content: a sequence number
//	    given twice).
//
// Under a fault model that loses writes (a Sentinel failover promoting a
// replica that missed the master's last writes), the rule is weaker, and
// exactly this: the exporter may have archived records of writes the
// failover then lost (a decision that, for Redis, never happened); the
// promoted master goes on from the sequence numbers its replica had, so
// it gives the lost writes' numbers again, to other records. The archive
// keeps the first content of each id and sets the other aside
// (arbiter_event_conflicts), never overwriting. So there: (f) still holds
// (numbers are re-issued from below, never skipped); (g) holds over the
// archive and its conflicts together: every record of a decision that
// survived the failover is archived, in arbiter_events or, when a lost
// write's record took its id first, as a conflict; (h) is not asserted
// (a lost history and the surviving one may each end a check, or settle
// one expiry under two numbers), and the conflicts are reported.
func (m *model) assertArchive(t *testing.T, a archived) {
	t.Helper()
	n, jumps := 0, 0
	expired := m.metaExpiries(t)
	for c, recs := range a.events {
		n += len(recs)
		for i := 1; i < len(recs); i++ {
			if recs[i].Seq == recs[i-1].Seq+1 {
				continue
			}
			if expired.jumped(c, recs[i-1].Seq, recs[i].Seq) {
				jumps++
			} else {
				t.Errorf("(f) %s's archived records skip from seq %d to %d", c, recs[i-1].Seq, recs[i].Seq)
			}
		}
	}
	swept := 0.0
	for _, arb := range m.arbiters() {
		v, _ := metricValue(context.Background(), arb+"/metrics", "arbiter_holds_swept_total")
		swept += v
	}
	t.Logf("archive: %d records (%.0f expiries swept), %d conflicts, %d numbers restarted from the clock after meta expired; the ledger: %d checks, %d grants",
		n, swept, len(a.conflicts), jumps, len(m.ledger.checks), len(m.ledger.grants))
	if m.lossy {
		m.reportConflicts(t, a)
		return
	}
	for _, c := range a.conflicts {
		t.Errorf("(h) conflict kept aside: %s %s %s (first seen %v): a sequence number was given twice", c.ID, c.Type, c.CheckID, c.FirstSeen)
	}
	for c, recs := range a.events {
		for f, k := range facts(recs) {
			if strings.HasSuffix(f, " ended") && k > 1 {
				t.Errorf("(h) %s: check %s has %d endings archived: %v", c, strings.Fields(f)[0], k, endings(recs, strings.Fields(f)[0]))
			}
		}
	}
}

// reportConflicts logs, under a lossy fault model, the conflicts and how
// many of the ledger's records are archived only among them (a surviving
// decision whose number a lost one had taken in arbiter_events).
func (m *model) reportConflicts(t *testing.T, a archived) {
	t.Helper()
	var main []validation.Record
	for _, recs := range a.events {
		main = append(main, recs...)
	}
	inMain := facts(main)
	aside := 0
	for e := range m.ledger.expectations(true) {
		if inMain[e] == 0 {
			aside++
		}
	}
	t.Logf("archive: %d checks the failover lost; %d conflicts (numbers the promoted master gave again); %d of the ledger's records archived only as conflicts",
		m.lostChecks, len(a.conflicts), aside)
	for i, c := range a.conflicts {
		if i == 5 {
			t.Logf("... %d more conflicts", len(a.conflicts)-i)
			break
		}
		t.Logf("archive conflict: %s %s %s (first seen %v)", c.ID, c.Type, c.CheckID, c.FirstSeen)
	}
}

// endings lists the records of check id, for a failure message.
func endings(recs []validation.Record, id string) []string {
	var out []string
	for _, r := range recs {
		if r.CheckID == id {
			out = append(out, fmt.Sprintf("%d:%s by %s at %s", r.Seq, r.Type, r.Actor, r.At.Format("15:04:05.000")))
		}
	}
	return out
}

// metricValue reads one unlabelled metric from a Prometheus text page.
func metricValue(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}
