package abandon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// Defaults of Queue.
const (
	DefaultRetry = 250 * time.Millisecond
	// MaxPending bounds the checks a Queue keeps trying to settle; past it
	// the oldest is dropped (and logged): its hold then only expires.
	MaxPending = 10000
)

// Queue gives up checks whose outcome is unknown. When a check's script
// was sent and its reply lost (validation.ErrOutcomeUnknown: Redis stalled,
// a connection dropped), the client got 503 and never learns of a hold the
// script may have placed; left alone, that ghost hold would lock the
// customer for its whole TTL and refuse the client's own retry as
// hold_exists. validation.Service.Check hands such checks to Add; Run
// settles each with validation.Store.Abandon as soon as the store answers
// again, retrying until it does. It is safe for concurrent use.
type Queue struct {
	Store validation.Store
	Now   func() time.Time // default time.Now
	Log   *slog.Logger     // default slog.Default()
	// Retry is the pause between two attempts while the store is
	// unavailable; default DefaultRetry.
	Retry time.Duration
	// OnOutcome, when set, is called once per settled check.
	OnOutcome func(validation.AbandonOutcome)

	mu      sync.Mutex
	pending []validation.AbandonRequest // oldest first
	wake    chan struct{}
}

var _ validation.Abandoner = (*Queue)(nil)

// Add schedules the check for validation.Store.Abandon; it implements
// validation.Abandoner.
func (a *Queue) Add(customerID, checkID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) >= MaxPending {
		a.log().Error("too many checks of unknown outcome; the oldest is left to expire", "check", a.pending[0].CheckID)
		a.pending = a.pending[1:]
	}
	a.pending = append(a.pending, validation.AbandonRequest{CustomerID: customerID, CheckID: checkID, Actor: "arbiter"})
	a.signal()
}

// Pending returns how many checks are still to settle.
func (a *Queue) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}

func (a *Queue) signal() {
	if a.wake == nil {
		a.wake = make(chan struct{}, 1)
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run settles scheduled checks until ctx ends.
func (a *Queue) Run(ctx context.Context) {
	a.mu.Lock()
	a.signal() // creates wake; nothing may be pending yet
	wake := a.wake
	a.mu.Unlock()
	retry := a.Retry
	if retry <= 0 {
		retry = DefaultRetry
	}
	for {
		var after <-chan time.Time
		if a.settle(ctx) > 0 {
			after = time.After(retry)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-after:
		}
	}
}

// settle tries every pending check once, oldest first, and returns how
// many are left. It stops at the first unavailable or full store (the rest
// would fail too); a check that fails otherwise goes to the back of the
// line, so it cannot block the others.
func (a *Queue) settle(ctx context.Context) int {
	for range a.Pending() {
		a.mu.Lock()
		if len(a.pending) == 0 {
			a.mu.Unlock()
			return 0
		}
		req := a.pending[0]
		a.mu.Unlock()
		req.Now = a.now()
		out, err := a.Store.Abandon(ctx, req)
		switch {
		case errors.Is(err, validation.ErrUnavailable), errors.Is(err, validation.ErrStoreFull), ctx.Err() != nil:
			return a.Pending()
		case err != nil:
			a.log().Error("abandon a check of unknown outcome; retrying later", "check", req.CheckID, "err", err)
			a.mu.Lock()
			if len(a.pending) > 0 && a.pending[0].CheckID == req.CheckID {
				a.pending = append(a.pending[1:], req)
			}
			a.mu.Unlock()
			continue
		}
		a.log().Warn("check of unknown outcome settled", "check", req.CheckID, "outcome", string(out))
		if a.OnOutcome != nil {
			a.OnOutcome(out)
		}
		a.mu.Lock()
		if len(a.pending) > 0 && a.pending[0].CheckID == req.CheckID {
			a.pending = a.pending[1:]
		}
		a.mu.Unlock()
	}
	return a.Pending()
}

// Flush makes one last attempt at every pending check, for a shutdown
// (Run has stopped, requests have drained), and returns how many are left:
// their holds will only expire.
func (a *Queue) Flush(ctx context.Context) int {
	left := a.settle(ctx)
	if left > 0 {
		a.log().Error("shutting down with checks of unknown outcome not settled; their holds will expire", "checks", left)
	}
	return left
}

func (a *Queue) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Queue) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}
