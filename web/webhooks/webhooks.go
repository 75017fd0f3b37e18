// Package webhooks announces arbiter's events to the product services
// that subscribed to them, following the Standard Webhooks convention: each
// record is POSTed as JSON with the headers webhook-id (the record id),
// webhook-timestamp (the send time, unix seconds) and webhook-signature
// ("v1,<base64 HMAC-SHA256>" over "id.timestamp.body", made by the
// official library with the subscriber's whsec_ secret).
//
// The Sender takes its work from validation.Deliveries, the queue the
// archive fills in the same transaction as it stores the records. Delivery
// is at least once: a record is removed from the queue only after a 2xx
// answer, and every other outcome (another status, a timeout, a broken
// connection) makes it due again after an exponential backoff, for ever.
// Order per customer is the queue's: it only hands out the oldest
// undelivered record of each customer, so a record is never sent before
// an earlier record of its customer was answered 2xx. Receivers must treat
// a repeated webhook-id as done.
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/arbiter-bank/arbiter/validation"
)

// Subscriber is one product service to announce events to: its client id
// (the queue's subscriber), its endpoint, its secret ("whsec_" + base64)
// and the webhook types it receives (validation.WebhookTypes). String and
// LogValue leave the secret out.
type Subscriber struct {
	ID     string
	URL    string
	Secret string
	Types  []string
}

// String describes the subscriber without its secret.
func (s Subscriber) String() string {
	return fmt.Sprintf("subscriber %s → %s %v", s.ID, s.URL, s.Types)
}

// GoString is String, so that %#v does not print the secret either.
func (s Subscriber) GoString() string { return s.String() }

// LogValue logs the subscriber without its secret.
func (s Subscriber) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", s.ID), slog.String("url", s.URL), slog.Any("types", s.Types))
}

// Options configure a Sender. Queue is required; the zero value of every
// other field means its documented default.
type Options struct {
	Queue       validation.Deliveries
	Subscribers []Subscriber
	// HTTP sends the requests; default a client that follows no redirect
	// (a 3xx is a failed delivery, not a new address).
	HTTP *http.Client
	// Timeout bounds one attempt, answer included; default 10s. It must
	// be shorter than Lease, so an attempt ends before its claim lapses.
	Timeout time.Duration
	// Now is the clock of claims, retries and webhook-timestamp; default time.Now.
	Now func() time.Time
	// MinBackoff and MaxBackoff bound the pause before a retry: MinBackoff
	// after the first failure, doubling with each, at most MaxBackoff, and
	// each drawn at random from its upper half (jitter); default 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Lease is how long a claimed delivery is this sender's; default 30s.
	Lease time.Duration
	// Batch is how many deliveries a claim takes per subscriber; default 100.
	Batch int
	// PollInterval is how often an idle subscriber's queue is asked for
	// work when nothing calls Wake; default 500ms.
	PollInterval time.Duration
	// Log receives failed attempts (Warn) and queue errors (Error); never a
	// secret. Default slog.Default().
	Log *slog.Logger
	// Observe, when set, is called after every attempt (for metrics:
	// delivered, failed, attempts). It must not block.
	Observe func(Attempt)
}

// Attempt is the outcome of one POST, as Options.Observe sees it.
type Attempt struct {
	Subscriber string
	ID         string // the record id
	Type       string // the webhook type
	N          int    // this attempt's number, 1 for the first
	Status     int    // the HTTP status; 0 when none was received
	Err        error  // why it failed; nil when Delivered
	Delivered  bool   // answered 2xx and removed from the queue
	Retry      time.Time
	Elapsed    time.Duration
}

// Sender delivers the queue's records to the subscribers. Create it with
// New; Run does the work, Wake hurries it.
type Sender struct {
	opts Options
	subs []subscriber
}

// subscriber is a Subscriber with its signer and its wake-up channel.
type subscriber struct {
	Subscriber
	signer *standardwebhooks.Webhook
	wake   chan struct{}
}

// New checks the options (each subscriber has an id, an absolute http(s)
// URL and a valid secret; Timeout is below Lease) and fills in defaults.
func New(opts Options) (*Sender, error) {
	if opts.Queue == nil {
		return nil, errors.New("webhooks: no queue")
	}
	setDefaults(&opts)
	// An attempt (Timeout) and settling it in the queue (Timeout again)
	// end before the claim lapses.
	if 2*opts.Timeout >= opts.Lease {
		return nil, fmt.Errorf("webhooks: twice the timeout %v must be shorter than the lease %v", opts.Timeout, opts.Lease)
	}
	s := &Sender{opts: opts}
	for _, sub := range opts.Subscribers {
		u, err := url.Parse(sub.URL)
		if sub.ID == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhooks: subscriber %q needs an id and an absolute http(s) URL", sub.ID)
		}
		signer, err := standardwebhooks.NewWebhook(sub.Secret)
		if err != nil {
			return nil, fmt.Errorf("webhooks: subscriber %q: secret is not whsec_ and a base64 key", sub.ID)
		}
		s.subs = append(s.subs, subscriber{Subscriber: sub, signer: signer, wake: make(chan struct{}, 1)})
	}
	return s, nil
}

func setDefaults(o *Options) {
	if o.HTTP == nil {
		o.HTTP = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Wake makes every subscriber's loop claim at once instead of at its next
// poll, as after an archive write; it never blocks.
func (s *Sender) Wake() {
	for _, sub := range s.subs {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// Run delivers until ctx is done, one loop per subscriber so that a slow
// endpoint delays no other; it returns ctx's error. Attempts in flight
// when ctx ends are abandoned; their claims lapse and they are sent again.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.subs {
		wg.Go(func() { s.loop(ctx, &s.subs[i]) })
	}
	wg.Wait()
	<-ctx.Done() // without subscribers too, Run lasts as long as ctx
	return ctx.Err()
}

// loop claims and delivers sub's due records, claiming again at once
// after a full batch, and otherwise at the next poll or Wake.
func (s *Sender) loop(ctx context.Context, sub *subscriber) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-sub.wake:
		}
		for ctx.Err() == nil {
			if n := s.round(ctx, sub); n < s.opts.Batch {
				break // caught up: wait for the next poll or Wake
			}
		}
		t.Reset(s.opts.PollInterval)
	}
}

// round claims one batch of sub's deliveries and sends them concurrently
// (they are of different customers: the queue hands out heads only). It
// returns how many it claimed.
func (s *Sender) round(ctx context.Context, sub *subscriber) int {
	ds, err := s.opts.Queue.Claim(ctx, sub.ID, s.opts.Now(), s.opts.Lease, s.opts.Batch)
	if err != nil {
		if ctx.Err() == nil {
			s.opts.Log.Error("webhooks: claim failed", "subscriber", sub.ID, "err", err)
		}
		return 0
	}
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() { s.deliver(ctx, sub, d) })
	}
	wg.Wait()
	return len(ds)
}

// deliver makes one attempt at d and settles it in the queue: Done on
// 2xx, Retry after the backoff otherwise. The queue decides what is owed
// (the archive queued d for sub's types as the instance that archived it
// knew them), so a type this instance's clients file no longer lists for
// sub is sent all the same: during a rolling change of the file, nothing
// queued is dropped unsent. Only a record of a type never announced is
// settled without a request.
func (s *Sender) deliver(ctx context.Context, sub *subscriber, d validation.Delivery) {
	typ, ok := validation.WebhookType(d.Type)
	if !ok {
		s.settle(ctx, sub, d, Attempt{Subscriber: sub.ID, ID: d.ID, Type: string(d.Type), Delivered: true})
		return
	}
	start := time.Now()
	status, err := s.post(ctx, sub, typ, d.Record)
	if ctx.Err() != nil {
		return // shutting down: the claim lapses and the record is sent again
	}
	a := Attempt{Subscriber: sub.ID, ID: d.ID, Type: typ, N: d.Attempts + 1, Status: status, Err: err,
		Delivered: err == nil, Elapsed: time.Since(start)}
	if err != nil {
		a.Retry = s.opts.Now().Add(s.backoff(a.N))
		s.opts.Log.Warn("webhooks: delivery failed; retrying", "subscriber", sub.ID, "id", d.ID, "type", typ,
			"attempt", a.N, "status", status, "retry_at", a.Retry, "err", err)
	}
	s.settle(ctx, sub, d, a)
}

// settle records a's outcome in the queue and reports it. A queue error
// is only logged: the claim lapses and the record is claimed again.
func (s *Sender) settle(ctx context.Context, sub *subscriber, d validation.Delivery, a Attempt) {
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	var err error
	if a.Delivered {
		err = s.opts.Queue.Done(qctx, sub.ID, d.ID)
	} else {
		err = s.opts.Queue.Retry(qctx, sub.ID, d.ID, a.Retry, a.Err.Error())
	}
	if err != nil {
		s.opts.Log.Error("webhooks: queue not updated; the claim will lapse", "subscriber", sub.ID, "id", d.ID, "delivered", a.Delivered, "err", err)
	}
	if s.opts.Observe != nil && a.N > 0 {
		s.opts.Observe(a)
	}
}

// maxAnswer is how much of an answer's body is read (and thrown away), so
// the connection can be reused.
const maxAnswer = 64 << 10

// post signs and sends one announcement; it returns the status received
// and an error unless it was 2xx.
func (s *Sender) post(ctx context.Context, sub *subscriber, typ string, r validation.Record) (int, error) {
	b, err := body(typ, r)
	if err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	now := s.opts.Now()
	sig, err := sub.signer.Sign(r.ID, now, b)
	if err != nil {
		return 0, fmt.Errorf("sign: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, strings.NewReader(string(b)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "arbiter-webhooks")
	req.Header.Set(standardwebhooks.HeaderWebhookID, r.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := s.opts.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxAnswer)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// backoff is the pause after the n-th failed attempt: MinBackoff doubled
// n-1 times, at most MaxBackoff, drawn from its upper half.
func (s *Sender) backoff(n int) time.Duration {
	d := s.opts.MinBackoff
	for i := 1; i < n && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}
