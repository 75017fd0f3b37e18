package reconcile

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/arbiter-bank/arbiter/validation"
)

// Defaults and limits of Reconciler.
const (
	DefaultBatch    = 256              // customers per pipelined read of grants
	DefaultLeaseTTL = 30 * time.Second // renewed every third of it while a run lasts
	// MaxStoredFindings bounds the findings kept per run (counts stay
	// exact): a first onboarding imports millions, and each import is in
	// its customer's audit trail already.
	MaxStoredFindings = 10000
	// MinReleaseCap is the least number of orphan grants of one product a
	// run may release; the cap is the larger of it and a tenth of the
	// product's grants.
	MinReleaseCap = 10
)

// Reconciler compares what the product systems hold (their holdings
// feeds) with arbiter's ledger, imports what arbiter lacks, opens cases for
// double holdings, and releases or reports orphan grants. Each run reads
// every feed completely, in one merged customer-id order, so its memory is
// bounded by the page size times the sources, not by the customers.
// Imports and releases go through the Ledger's atomic scripts, as the
// API's do, so a run is held to the same policy as a check.
type Reconciler struct {
	// Ledger is the domain's store: imports and releases.
	Ledger validation.Store
	// Store keeps the runs, their leases and the cases, and reads grants
	// in bulk for them.
	Store   Store
	Policy  *validation.Policy
	Config  validation.ReconcileConfig // WithDefaults is applied by the Reconciler
	Sources []Source
	// Base is the context runs started on demand live in (not the
	// request's); default context.Background().
	Base context.Context
	Now  func() time.Time
	Log  *slog.Logger
	// OnFinding is called once per finding; OnSourceDone once per source
	// read completely and trusted (the metrics).
	OnFinding    func(FindingKind)
	OnSourceDone func(product string, at time.Time)
	Batch        int           // default DefaultBatch
	LeaseTTL     time.Duration // default DefaultLeaseTTL

	runs sync.WaitGroup // runs begun and not yet saved finished (Wait)
}

// Wait waits until every run this Reconciler began has saved its final
// state (one whose context ended saves failed, "interrupted by shutdown"),
// or until ctx ends. Call it at shutdown, after cancelling Base, before
// closing the store.
func (r *Reconciler) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { r.runs.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func (r *Reconciler) cfg() validation.ReconcileConfig { return r.Config.WithDefaults() }

// Start begins a run in the background and returns it (status running).
// Admins only; ErrRunning while another run holds the lease.
func (r *Reconciler) Start(ctx context.Context, actor validation.Actor) (Run, error) {
	if !actor.Has(validation.RoleAdmin) {
		return Run{}, validation.Errorf(validation.ReasonForbidden, "only admins start reconciliations")
	}
	run, err := r.begin(ctx, actor.ID)
	if err != nil {
		return Run{}, err
	}
	go r.execute(cmp.Or(r.Base, context.Background()), run)
	return run, nil
}

// Reconcile runs a reconciliation to its end and returns it (the
// scheduler's and the tests' way); ErrRunning while another
// run holds the lease.
func (r *Reconciler) Reconcile(ctx context.Context, by string) (Run, error) {
	run, err := r.begin(ctx, by)
	if err != nil {
		return Run{}, err
	}
	return r.execute(ctx, run), nil
}

// begin takes the lease and stores the new run.
func (r *Reconciler) begin(ctx context.Context, by string) (Run, error) {
	if len(r.Sources) == 0 {
		return Run{}, validation.Errorf(validation.ReasonNotFound, "no holdings feeds are configured (the policy's reconcile: sources)")
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Run{}, err
	}
	id := "rec_" + hex.EncodeToString(b[:])
	ttl := cmp.Or(r.LeaseTTL, DefaultLeaseTTL)
	ok, holder, err := r.Store.AcquireLease(ctx, id, ttl)
	if err != nil {
		return Run{}, err
	}
	if !ok {
		return Run{}, validation.Errorf(validation.ReasonReconciliationRunning, "reconciliation %s is running; wait for it to finish", holder)
	}
	run := Run{ID: id, Status: RunRunning, StartedAt: r.now(), StartedBy: by, Counts: map[FindingKind]int{}}
	for _, s := range r.Sources {
		run.Sources = append(run.Sources, SourceProgress{Product: s.Product, Name: s.Name, Status: SourceReading})
	}
	if err := r.Store.SaveRun(ctx, run); err != nil {
		_ = r.Store.ReleaseLease(context.WithoutCancel(ctx), id)
		return Run{}, err
	}
	r.runs.Add(1) // Done when execute has saved the final state
	return run, nil
}

// Run returns a run and up to limit of its findings from offset.
func (r *Reconciler) Run(ctx context.Context, actor validation.Actor, id string, offset, limit int) (Run, []Finding, error) {
	if !actor.Has(validation.RoleAdmin) {
		return Run{}, nil, validation.Errorf(validation.ReasonForbidden, "only admins read reconciliations")
	}
	if !runID.MatchString(id) {
		return Run{}, nil, validation.Errorf(validation.ReasonNotFound, "no reconciliation %q", id)
	}
	run, err := r.Store.Run(ctx, id)
	if err != nil {
		return Run{}, nil, err
	}
	if run.Status == RunRunning {
		// A run saves its final state before it gives the lease up, so a
		// run still "running" once the lease is not its own has no process
		// behind it any more (killed, or its instance lost Redis).
		holder, err := r.Store.LeaseHolder(ctx)
		if err == nil && holder != id {
			if run, err = r.Store.Run(ctx, id); err != nil {
				return Run{}, nil, err
			}
			if run.Status == RunRunning {
				run.Status, run.Error = RunFailed, "the instance running it stopped"
			}
		}
	}
	fs, err := r.Store.Findings(ctx, id, offset, limit)
	return run, fs, err
}

var runID = regexp.MustCompile(`^rec_[0-9a-f]{16}$`)

// Cases returns the open cases, oldest first.
func (r *Reconciler) Cases(ctx context.Context, limit int) ([]validation.Case, error) {
	return r.Store.Cases(ctx, limit)
}

// MaxNoteLen bounds a case resolution's note (characters).
const MaxNoteLen = 500

// Resolve closes a customer's case (admins only), audited case_resolved
// with the admin and the note: validation.ErrNotFound when none is open.
func (r *Reconciler) Resolve(ctx context.Context, actor validation.Actor, customerID, note string) (validation.Case, error) {
	if !actor.Has(validation.RoleAdmin) {
		return validation.Case{}, validation.Errorf(validation.ReasonForbidden, "only admins resolve cases")
	}
	customerID, err := validation.ParseCustomerID(customerID)
	if err != nil {
		return validation.Case{}, err
	}
	if strings.TrimSpace(note) == "" || utf8.RuneCountInString(note) > MaxNoteLen || !plainText(note) {
		return validation.Case{}, validation.Errorf(validation.ReasonInvalidRequest, "note must say how the case was resolved: 1 to %d characters of text without control or format characters", MaxNoteLen)
	}
	return r.Store.ResolveCase(ctx, customerID, actor.ID, note, r.now())
}

// plainText reports whether s is UTF-8 without control, format or
// separator characters (as validation.ValidAgentID, whatever the length).
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return false
		}
	}
	return true
}

// Schedule starts a run every Config.Interval until ctx ends; with
// several instances, a claim in the store lets one of them start each
// interval's run. A zero interval schedules nothing.
func (r *Reconciler) Schedule(ctx context.Context, instance string) {
	every := r.cfg().Interval
	if every <= 0 || len(r.Sources) == 0 {
		return
	}
	t := time.NewTicker(min(every/4, time.Minute))
	defer t.Stop()
	for {
		ok, err := r.Store.ClaimSchedule(ctx, instance, every)
		if err == nil && ok {
			if _, err := r.Reconcile(ctx, validation.ReconcilerActor); err != nil && !errors.Is(err, ErrRunning) {
				r.log().Warn("scheduled reconciliation did not start", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ErrRunning: another run holds the lease.
var ErrRunning = &validation.Error{Reason: validation.ReasonReconciliationRunning}

// runState is one run in progress.
type runState struct {
	r       *Reconciler
	run     Run
	pending []Finding // not yet stored
	cutoff  time.Time // grants older than this may be orphans
	// cased: customers this run opened a case for; their grants are left
	// alone (a case deletes nothing). As many as the run's cases.
	cased map[string]bool
}

// ErrLeaseLost ends a run whose lease another run took (it lapsed): the
// run stops at once and releases nothing, as two runs must not both act.
var ErrLeaseLost = errors.New("the reconciliation lease was lost (it lapsed, and another run may hold it): stopped, nothing more released")

func (r *Reconciler) execute(parent context.Context, run Run) Run {
	defer r.runs.Done()
	st := &runState{r: r, run: run, cutoff: run.StartedAt.Add(-r.cfg().Grace), cased: map[string]bool{}}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	ttl := cmp.Or(r.LeaseTTL, DefaultLeaseTTL)
	stop := r.keepLease(ctx, run.ID, ttl, func() { cancel(ErrLeaseLost) })
	defer stop()
	log := r.log().With("reconciliation", run.ID)
	log.Info("reconciliation started", "sources", len(r.Sources), "by", run.StartedBy)
	err := st.merge(ctx)
	if err == nil {
		st.judgeCounts(ctx)
		// The release phase starts only on a lease known to be held.
		if ok, lerr := r.Store.RenewLease(ctx, run.ID, ttl); lerr == nil && !ok {
			cancel(ErrLeaseLost)
		}
		if err = context.Cause(ctx); err == nil {
			err = st.orphans(ctx)
		}
	}
	if err == nil {
		err = st.flush(ctx)
	}
	switch cause := context.Cause(ctx); {
	case cause != nil && parent.Err() != nil:
		err = errors.New("interrupted by shutdown")
	case cause != nil:
		err = cause // the reason, not whatever call it made fail
	}
	st.run.FinishedAt = r.now()
	st.run.Status = RunDone
	if err != nil {
		st.run.Status, st.run.Error = RunFailed, err.Error()
		log.Error("reconciliation failed", "err", err)
	}
	for i, s := range st.run.Sources {
		if s.Status == SourceReading {
			st.run.Sources[i].Status, st.run.Sources[i].Error = SourceFailed, "not read to the end: the run failed"
		}
	}
	done := context.WithoutCancel(ctx)
	if err == nil {
		for _, s := range st.run.Sources {
			if s.Status != SourceDone {
				continue
			}
			if err := r.Store.SetLastCount(done, s.Product, s.Customers, st.run.FinishedAt); err != nil {
				log.Warn("last count not recorded", "product", s.Product, "err", err)
			}
			if r.OnSourceDone != nil {
				r.OnSourceDone(s.Product, st.run.FinishedAt)
			}
		}
	}
	if err := r.Store.SaveRun(done, st.run); err != nil {
		log.Error("reconciliation state not saved", "err", err)
	}
	products := make([]string, len(r.Sources))
	for i, s := range r.Sources {
		products[i] = s.Product
	}
	if err := r.Store.DropRun(done, run.ID, products); err != nil {
		log.Warn("reconciliation temporary data not dropped (it expires)", "err", err)
	}
	log.Info("reconciliation finished", "status", st.run.Status, "counts", st.run.Counts)
	return st.run
}

// keepLease renews the lease until stop is called, then gives it up;
// lost is called when a renewal finds another holder.
func (r *Reconciler) keepLease(ctx context.Context, id string, ttl time.Duration, lost func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				ok, err := r.Store.RenewLease(ctx, id, ttl)
				switch {
				case err != nil:
					r.log().Warn("reconciliation lease not renewed: another run may start", "reconciliation", id, "err", err)
				case !ok:
					r.log().Error("reconciliation lease lost: the run stops", "reconciliation", id)
					lost()
					return
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		_ = r.Store.ReleaseLease(context.WithoutCancel(ctx), id)
	}
}

// record adds a finding to the run.
func (st *runState) record(f Finding) {
	st.run.Counts[f.Kind]++
	if st.r.OnFinding != nil {
		st.r.OnFinding(f.Kind)
	}
	if st.run.Findings+len(st.pending) < MaxStoredFindings {
		st.pending = append(st.pending, f)
	}
}

// flush stores the pending findings and the run's progress.
func (st *runState) flush(ctx context.Context) error {
	if len(st.pending) > 0 {
		if err := st.r.Store.AddFindings(ctx, st.run.ID, st.pending); err != nil {
			return err
		}
		st.run.Findings += len(st.pending)
		st.pending = st.pending[:0]
	}
	return st.r.Store.SaveRun(ctx, st.run)
}

// judgeCounts fails, for releases, every source that listed no customer or
// far fewer than its last successful run: a feed that suddenly lost most
// of its customers is more likely broken than right.
func (st *runState) judgeCounts(ctx context.Context) {
	share := *st.r.cfg().MinShare
	for i, s := range st.run.Sources {
		if s.Status != SourceDone {
			continue
		}
		p := &st.run.Sources[i]
		if s.Customers == 0 {
			p.Status, p.Error = SourceFailed, "the feed listed no customers: treated as partial, nothing released"
			continue
		}
		last, err := st.r.Store.LastCount(ctx, s.Product)
		if err != nil {
			p.Status, p.Error = SourceFailed, "last successful count unreadable: "+err.Error()
			continue
		}
		if last > 0 && float64(s.Customers) < share*float64(last) {
			p.Status, p.Error = SourceFailed, fmt.Sprintf(
				"the feed listed %d customers, under %.0f%% of the %d of its last successful run: treated as partial, nothing released",
				s.Customers, share*100, last)
		}
	}
}
