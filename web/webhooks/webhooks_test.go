package webhooks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/web/webhooks"
)

// secret is "whsec_" and the base64 of 32 bytes.
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4q7bqjfJv1Y="

// eventTypes are the audit events that are announced, in the order of
// validation.WebhookTypes.
var eventTypes = []validation.EventType{validation.EventExpired, validation.EventCancelled, validation.EventReleased,
	validation.EventImported, validation.EventCaseOpened, validation.EventCaseResolved}

// records returns n records of each customer, of every announced type in turn.
func records(customers []string, n int) []validation.Record {
	at := time.Date(2026, 12, 7, 10, 0, 0, 123_000_000, time.UTC)
	var recs []validation.Record
	for i := 1; i <= n; i++ {
		for _, c := range customers {
			seq := int64(100 + i)
			recs = append(recs, validation.Record{ID: validation.RecordID(c, seq), Customer: c, Seq: seq, Event: validation.Event{
				At: at.Add(time.Duration(i) * time.Second), Type: eventTypes[i%len(eventTypes)], Product: "credit_card",
				CheckID: "chk_" + c, Actor: "arbiter", Fence: seq, Reason: "hold_expired"}})
		}
	}
	return recs
}

// receiver is a subscriber's endpoint. It verifies every request with the
// Standard Webhooks library, lets misbehave decide the answer of each
// attempt at a record (by the attempt's number at this receiver, from 1),
// and notes the order in which records were first answered 2xx.
type receiver struct {
	t          *testing.T
	misbehave  func(w http.ResponseWriter, r *http.Request, attempt int) bool // true: it answered
	mu         sync.Mutex
	attempts   map[string]int
	first      []client.WebhookEvent // first 2xx of each record, in order
	delivered  map[string]bool
	unverified int
}

func newReceiver(t *testing.T, misbehave func(w http.ResponseWriter, r *http.Request, attempt int) bool) (*receiver, *httptest.Server) {
	rc := &receiver{t: t, misbehave: misbehave, attempts: map[string]int{}, delivered: map[string]bool{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	verr := wh.Verify(body, r.Header)
	rc.mu.Lock()
	if verr != nil {
		rc.unverified++
	}
	id := r.Header.Get("webhook-id")
	rc.attempts[id]++
	n := rc.attempts[id]
	rc.mu.Unlock()
	if rc.misbehave != nil && rc.misbehave(w, r, n) {
		return
	}
	ev, err := client.ParseWebhook(secret, r.Header, body)
	if err != nil {
		rc.t.Errorf("ParseWebhook: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	if !rc.delivered[id] {
		rc.delivered[id] = true
		rc.first = append(rc.first, ev)
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// failWith500 fails the first two attempts at every record.
func failWith500(w http.ResponseWriter, _ *http.Request, attempt int) bool {
	if attempt <= 2 {
		http.Error(w, "not now", http.StatusInternalServerError)
		return true
	}
	return false
}

// hold blocks the first attempt at every record until the sender gives up
// on it (its timeout closes the connection, which ends the request's context).
func hold(_ http.ResponseWriter, r *http.Request, attempt int) bool {
	if attempt == 1 {
		<-r.Context().Done()
		return true
	}
	return false
}

// hangUp closes the connection without an answer on the first attempt.
func hangUp(w http.ResponseWriter, _ *http.Request, attempt int) bool {
	if attempt > 1 {
		return false
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
	return true
}

// fastOptions are options whose pauses are milliseconds.
func fastOptions(q validation.Deliveries, subs ...webhooks.Subscriber) webhooks.Options {
	return webhooks.Options{Queue: q, Subscribers: subs, Timeout: 200 * time.Millisecond, Lease: 5 * time.Second,
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, PollInterval: 2 * time.Millisecond, Batch: 4}
}

// run runs s until q is drained (or the test's guard expires) and stops it.
func run(t *testing.T, s *webhooks.Sender, q *queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-q.drained:
	case <-time.After(30 * time.Second):
		t.Error("queue not drained in 30s")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if v := q.violations(); len(v) > 0 {
		t.Errorf("contract violations: %v", v)
	}
}

func TestSenderDeliversEveryRecordInOrder(t *testing.T) {
	customers := []string{"C-1", "C-2", "C-3"}
	recs := records(customers, 6)
	q := newQueue()
	var subs []webhooks.Subscriber
	receivers := map[string]*receiver{}
	for name, misbehave := range map[string]func(http.ResponseWriter, *http.Request, int) bool{
		"flaky": failWith500, "slow": hold, "hangup": hangUp, "good": nil} {
		rc, srv := newReceiver(t, misbehave)
		receivers[name] = rc
		subs = append(subs, webhooks.Subscriber{ID: name, URL: srv.URL + "/webhooks/arbiter", Secret: secret, Types: validation.WebhookTypes})
		q.add(name, recs...)
	}
	var mu sync.Mutex
	delivered, failed := map[string]int{}, map[string]int{}
	opts := fastOptions(q, subs...)
	opts.Observe = func(a webhooks.Attempt) {
		mu.Lock()
		defer mu.Unlock()
		if a.Delivered {
			delivered[a.Subscriber]++
		} else {
			failed[a.Subscriber]++
		}
	}
	s, err := webhooks.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, q)

	byID := map[string]validation.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	wantFailed := map[string]int{"flaky": 2 * len(recs), "slow": len(recs), "hangup": len(recs), "good": 0}
	for name, rc := range receivers {
		t.Run(name, func(t *testing.T) {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if got, want := len(rc.first), len(recs); got != want {
				t.Fatalf("%d records delivered, want %d", got, want)
			}
			if rc.unverified > 0 {
				t.Errorf("%d requests failed the library's verification", rc.unverified)
			}
			last := map[string]int64{}
			for _, ev := range rc.first {
				if ev.Data.Seq <= last[ev.Data.CustomerID] {
					t.Errorf("%s first delivered after seq %d", ev.ID, last[ev.Data.CustomerID])
				}
				last[ev.Data.CustomerID] = ev.Data.Seq
				assertEvent(t, ev, byID[ev.ID])
			}
			mu.Lock()
			defer mu.Unlock()
			if got, want := delivered[name], len(recs); got != want {
				t.Errorf("Observe saw %d delivered, want %d", got, want)
			}
			// At least: a slow machine may time out an attempt the
			// receiver meant to answer.
			if got, want := failed[name], wantFailed[name]; got < want {
				t.Errorf("Observe saw %d failed attempts, want at least %d", got, want)
			}
		})
	}
}

// assertEvent checks that the client decodes the announcement of r into
// r's own fields: the payload's two sides agree.
func assertEvent(t *testing.T, ev client.WebhookEvent, r validation.Record) {
	t.Helper()
	typ, _ := validation.WebhookType(r.Type)
	want := client.WebhookEvent{ID: r.ID, Type: typ, Timestamp: r.At, Data: client.WebhookData{ID: r.ID, CustomerID: r.Customer,
		Seq: r.Seq, Event: string(r.Type), At: r.At, Product: r.Product, CheckID: r.CheckID, Actor: r.Actor,
		Reason: client.Reason(r.Reason), Fence: r.Fence}}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("received %+v\nwant %+v", ev, want)
	}
}

func TestSenderPayload(t *testing.T) {
	q := newQueue()
	at := time.Date(2026, 12, 7, 10, 0, 0, 123_000_000, time.FixedZone("Lisbon+1", 3600))
	q.add("card", validation.Record{ID: "C-1/123", Customer: "C-1", Seq: 123, Event: validation.Event{At: at,
		Type: validation.EventExpired, Product: "credit_card", CheckID: "chk_1", Actor: "arbiter", Agent: "agent-7",
		Reason: "hold_expired", Reasons: []validation.Reason{"a", "b"}, Note: "n", Fence: 7, PolicyVersion: "v3"}})
	q.add("card", validation.Record{ID: "C-1/124", Customer: "C-1", Seq: 124, Event: validation.Event{At: at,
		Type: validation.EventCancelled, Product: "credit_card", CheckID: "chk_1", Actor: "card-service"}})
	var (
		mu     sync.Mutex
		bodies []string
		heads  []http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, heads = append(bodies, string(b)), append(heads, r.Header.Clone())
		mu.Unlock()
	}))
	defer srv.Close()
	sent := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	opts := fastOptions(q, webhooks.Subscriber{ID: "card", URL: srv.URL, Secret: secret, Types: validation.WebhookTypes})
	opts.Now = func() time.Time { return sent }
	s, err := webhooks.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, q)
	want := []string{
		`{"type":"hold_expired","timestamp":"2026-12-07T09:00:00.123Z","data":{"id":"C-1/123","customer_id":"C-1","seq":123,"event":"expired","at":"2026-12-07T09:00:00.123Z","product":"credit_card","check_id":"chk_1","actor":"arbiter","agent":"agent-7","reason":"hold_expired","reasons":["a","b"],"note":"n","fence":7,"policy_version":"v3"}}`,
		`{"type":"hold_cancelled","timestamp":"2026-12-07T09:00:00.123Z","data":{"id":"C-1/124","customer_id":"C-1","seq":124,"event":"cancelled","at":"2026-12-07T09:00:00.123Z","product":"credit_card","check_id":"chk_1","actor":"card-service"}}`,
	}
	if !slices.Equal(bodies, want) {
		t.Fatalf("bodies =\n%s\nwant\n%s", bodies, want)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	for i, h := range heads {
		if got, want := h.Get("webhook-id"), []string{"C-1/123", "C-1/124"}[i]; got != want {
			t.Errorf("webhook-id = %q, want %q", got, want)
		}
		if got, want := h.Get("webhook-timestamp"), "1796641200"; got != want {
			t.Errorf("webhook-timestamp = %q, want %q", got, want)
		}
		if err := wh.VerifyIgnoringTimestamp([]byte(bodies[i]), h); err != nil {
			t.Errorf("signature of %s: %v", h.Get("webhook-id"), err)
		}
	}
}

func TestSenderWake(t *testing.T) {
	q := newQueue()
	rc, srv := newReceiver(t, nil)
	opts := fastOptions(q, webhooks.Subscriber{ID: "card", URL: srv.URL, Secret: secret, Types: validation.WebhookTypes})
	opts.PollInterval = time.Hour // only Wake can bring the record
	s, err := webhooks.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.Wake() // before any work: harmless, and never blocks
	s.Wake()
	q.add("card", records([]string{"C-9"}, 1)...)
	// A token Wake leaves is taken by a claim that starts after it, so the
	// record added before it is claimed without waiting for a poll.
	s.Wake()
	select {
	case <-q.drained:
	case <-time.After(30 * time.Second):
		t.Fatal("Wake did not bring the record in 30s")
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if got, want := len(rc.first), 1; got != want {
		t.Fatalf("%d delivered, want %d", got, want)
	}
}

// TestSenderSendsWhatTheQueueOwes: the queue decides what is owed; a
// record queued for a type this instance's configuration no longer lists
// (a rolling change of the clients file) is sent, not dropped.
func TestSenderSendsWhatTheQueueOwes(t *testing.T) {
	q := newQueue()
	rc, srv := newReceiver(t, nil)
	q.add("card", records([]string{"C-1"}, 6)...)
	s, err := webhooks.New(fastOptions(q, webhooks.Subscriber{ID: "card", URL: srv.URL, Secret: secret,
		Types: []string{validation.WebhookHoldExpired}}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, q)
	if got, want := len(rc.first), 6; got != want {
		t.Errorf("%d delivered, want %d (every record queued)", got, want)
	}
}

func TestNewRefuses(t *testing.T) {
	q := newQueue()
	for _, tc := range []struct {
		name string
		opts webhooks.Options
	}{
		{"no queue", webhooks.Options{}},
		{"relative url", webhooks.Options{Queue: q, Subscribers: []webhooks.Subscriber{{ID: "a", URL: "/x", Secret: secret}}}},
		{"bad secret", webhooks.Options{Queue: q, Subscribers: []webhooks.Subscriber{{ID: "a", URL: "http://x/", Secret: "whsec_!!"}}}},
		{"timeout past lease", webhooks.Options{Queue: q, Timeout: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := webhooks.New(tc.opts); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestRunWithoutSubscribersWaitsForCtx(t *testing.T) {
	s, err := webhooks.New(webhooks.Options{Queue: newQueue()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Wake()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before ctx ended", err)
	default:
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}
