package webhooks_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// queue is an in-memory validation.Deliveries, faithful to the contract:
// each subscriber's deliveries are ordered per customer, Claim hands out
// only the oldest undelivered delivery of each customer and only once it
// is due and not leased, Retry makes it due again later, Done removes it.
type queue struct {
	mu      sync.Mutex
	subs    map[string][]*entry // in enqueue order, which is seq order per customer
	open    int                 // entries not done
	drained chan struct{}       // closed when open falls to 0
	errs    []string            // contract violations by the sender
}

type entry struct {
	d           validation.Delivery
	due, leased time.Time
	done        bool
	whys        []string
}

var _ validation.Deliveries = (*queue)(nil)

func newQueue() *queue {
	return &queue{subs: map[string][]*entry{}, drained: make(chan struct{})}
}

// add enqueues recs for subscriber sub, due at once.
func (q *queue) add(sub string, recs ...validation.Record) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range recs {
		q.subs[sub] = append(q.subs[sub], &entry{d: validation.Delivery{Subscriber: sub, Record: r}})
		q.open++
	}
}

// head returns the oldest undelivered entry of each customer of sub.
func (q *queue) heads(sub string) []*entry {
	seen := map[string]bool{}
	var out []*entry
	for _, e := range q.subs[sub] {
		if e.done || seen[e.d.Customer] {
			continue
		}
		seen[e.d.Customer] = true
		out = append(out, e)
	}
	return out
}

func (q *queue) Claim(_ context.Context, sub string, now time.Time, lease time.Duration, n int) ([]validation.Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []validation.Delivery
	for _, e := range q.heads(sub) {
		if len(out) == n {
			break
		}
		if e.due.After(now) || e.leased.After(now) {
			continue
		}
		e.leased = now.Add(lease)
		out = append(out, e.d)
	}
	return out, nil
}

func (q *queue) find(sub, id string) *entry {
	for _, e := range q.subs[sub] {
		if e.d.ID == id {
			return e
		}
	}
	q.errs = append(q.errs, fmt.Sprintf("%s: %s is not queued", sub, id))
	return nil
}

func (q *queue) Done(_ context.Context, sub, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.find(sub, id)
	if e == nil || e.done {
		return nil
	}
	e.done = true
	if q.open--; q.open == 0 {
		close(q.drained)
	}
	return nil
}

func (q *queue) Retry(_ context.Context, sub, id string, at time.Time, why string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.find(sub, id)
	if e == nil || e.done {
		return nil
	}
	e.due, e.leased = at, time.Time{}
	e.d.Attempts++
	e.whys = append(e.whys, why)
	return nil
}

// violations returns the sender's calls that broke the contract.
func (q *queue) violations() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.errs
}
