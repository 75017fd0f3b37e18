package validation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// ReconcileConfig is the policy's reconcile: block: where the product
// systems' holdings feeds are and what a reconciliation may do. Zero values
// mean the defaults.
type ReconcileConfig struct {
	Interval time.Duration `yaml:"interval"`  // between scheduled runs; 0: only on demand
	Grace    time.Duration `yaml:"grace"`     // a grant younger than this is never an orphan; default 15m
	OnOrphan string        `yaml:"on_orphan"` // "report" (default) or "release"
	// PageSize is the limit asked of each feed per page; default 500, at
	// most MaxReconcilePageSize (what cmd/productsvc's feed accepts).
	PageSize int `yaml:"page_size"`
	// Timeout bounds each page request; default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MinShare: a feed that lists fewer customers than this share of its
	// last successful run is treated as partial; nil (absent): 0.5; 0
	// turns the check off (a feed listing no customer is still partial).
	MinShare *float64 `yaml:"min_share"`
	// ReleaseCap is the most orphan grants of one product a run may
	// release; 0: the larger of MinReleaseCap (10) and a tenth of the
	// product's grants. Above it, none is released.
	ReleaseCap int            `yaml:"release_cap"`
	Sources    []SourceConfig `yaml:"sources"`
}

// SourceConfig is one product system's holdings feed.
type SourceConfig struct {
	Product string `yaml:"product"`
	URL     string `yaml:"url"`      // GET {url}?after=&limit=
	KeyFile string `yaml:"key_file"` // the bearer key, read by cmd; empty: no Authorization
	Name    string `yaml:"name"`     // how findings name the system; default the URL's host
}

// Defaults of ReconcileConfig.
const (
	DefaultReconcileGrace    = 15 * time.Minute
	DefaultReconcilePageSize = 500
	DefaultReconcileTimeout  = 30 * time.Second
	DefaultReconcileMinShare = 0.5
	// MaxReconcilePageSize is the largest page_size: the most a feed is
	// asked per page (cmd/productsvc refuses a limit above it).
	MaxReconcilePageSize = 1000
	OnOrphanReport       = "report"
	OnOrphanRelease      = "release"
)

// WithDefaults returns the config with every zero value replaced by its default.
func (r ReconcileConfig) WithDefaults() ReconcileConfig {
	if r.Grace == 0 {
		r.Grace = DefaultReconcileGrace
	}
	if r.OnOrphan == "" {
		r.OnOrphan = OnOrphanReport
	}
	if r.PageSize == 0 {
		r.PageSize = DefaultReconcilePageSize
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultReconcileTimeout
	}
	if r.MinShare == nil {
		share := DefaultReconcileMinShare
		r.MinShare = &share
	}
	r.Sources = slices.Clone(r.Sources) // the policy's own stay as written
	for i, s := range r.Sources {
		if s.Name == "" {
			if u, err := url.Parse(s.URL); err == nil {
				r.Sources[i].Name = u.Host
			}
		}
	}
	return r
}

func (r *ReconcileConfig) validate(p *Policy, lines Lines) error {
	line := lines.of("reconcile")
	switch {
	case r.Interval < 0 || r.Grace < 0 || r.Timeout < 0:
		return fmt.Errorf("line %d: reconcile: durations must not be negative", line)
	case r.OnOrphan != "" && r.OnOrphan != OnOrphanReport && r.OnOrphan != OnOrphanRelease:
		return fmt.Errorf("line %d: reconcile: on_orphan %q must be release or report", line, r.OnOrphan)
	case r.PageSize < 0 || r.PageSize > MaxReconcilePageSize:
		return fmt.Errorf("line %d: reconcile: page_size %d must be 1..%d (the most a holdings feed is asked per page; cmd/productsvc refuses more)", line, r.PageSize, MaxReconcilePageSize)
	case r.ReleaseCap < 0:
		return fmt.Errorf("line %d: reconcile: release_cap %d is negative", line, r.ReleaseCap)
	case r.MinShare != nil && (*r.MinShare < 0 || *r.MinShare > 1):
		return fmt.Errorf("line %d: reconcile: min_share %v must be within 0..1", line, *r.MinShare)
	case r.Interval > 0 && r.Interval < time.Minute:
		return fmt.Errorf("line %d: reconcile: interval %s is under a minute", line, r.Interval)
	}
	seen := map[string]bool{}
	for i, s := range r.Sources {
		if l := lines.of("reconcile", "sources", strconv.Itoa(i)); l != 0 {
			line = l
		}
		u, err := url.Parse(s.URL)
		switch {
		case s.Product == "":
			return fmt.Errorf("line %d: reconcile source: product is missing", line)
		case !p.has(s.Product):
			return fmt.Errorf("line %d: reconcile source: unknown product %q", line, s.Product)
		case seen[s.Product]:
			return fmt.Errorf("line %d: reconcile source: product %q has two feeds", line, s.Product)
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return fmt.Errorf("line %d: reconcile source %s: url %q must be an http(s) URL", line, s.Product, s.URL)
		}
		seen[s.Product] = true
	}
	return nil
}

// KeyInClear reports whether the source would send its bearer key
// unencrypted over the network: a key_file with an http:// URL whose host
// is not loopback (localhost, 127.0.0.0/8, ::1). Production refuses it.
func (s SourceConfig) KeyInClear() bool {
	u, err := url.Parse(s.URL)
	if s.KeyFile == "" || err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func (p *Policy) has(product string) bool { _, ok := p.Products[product]; return ok }

// Holding is one product a product system says a customer holds.
type Holding struct {
	CustomerID string
	Product    string
	CheckID    string // arbiter's check the product was issued from; "" when issued outside arbiter
	IssuedAt   time.Time
}

// HoldingsPage is one answer of a holdings feed: holdings ordered by
// customer id, Next, the after of the next page ("" when done), and the
// feed's proof of the range the page covers (nil when the feed sends none).
type HoldingsPage struct {
	Holdings []Holding
	Next     string
	Proof    *Proof
}

// Proof is a feed's completeness proof of one page (docs/reconciliation.md "The
// completeness proof"): what the product system's own listing holds in the
// range the page covers, (after, Next], or (after, end) on the last page,
// counted apart from the page's rows. A page that lists anything else than
// its proof skipped, invented or repeated a customer.
type Proof struct {
	Customers int    // distinct customer ids in the range
	Holdings  int    // holdings in the range
	Digest    string // "sha256:" + hex SHA-256 of each distinct customer id + "\n", in order
}

// ProofOf returns the proof of holdings (ordered by customer id): what a
// page that lists exactly them must carry.
func ProofOf(holdings []Holding) Proof {
	h, p := sha256.New(), Proof{Holdings: len(holdings)}
	for i, x := range holdings {
		if i == 0 || x.CustomerID != holdings[i-1].CustomerID {
			h.Write([]byte(x.CustomerID + "\n"))
			p.Customers++
		}
	}
	p.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return p
}

// String words the proof for an error.
func (p Proof) String() string {
	return fmt.Sprintf("%d customers, %d holdings, %s", p.Customers, p.Holdings, p.Digest)
}

// Feed is a product system's holdings feed (validation/feed is the HTTP one).
type Feed interface {
	// Page returns up to limit holdings of customers with ids after after.
	Page(ctx context.Context, after string, limit int) (HoldingsPage, error)
}

// Source is a feed and the product it lists, as a Reconciler reads it.
type Source struct {
	Product string
	Name    string // shown in findings: "card-service"
	Feed    Feed
}

// FindingKind classifies what a reconciliation found.
type FindingKind string

// The kinds of findings.
const (
	FindingImported      FindingKind = "imported"       // a product with no grant at arbiter, imported
	FindingDoubleHolding FindingKind = "double_holding" // products of one exclusive group: a case
	FindingOrphanGrant   FindingKind = "orphan_grant"   // a grant no complete feed lists
	FindingCheckMismatch FindingKind = "check_mismatch" // the system's check id is not arbiter's grant
)

// FindingKinds lists every kind, in the order docs/reconciliation.md documents them.
var FindingKinds = []FindingKind{FindingImported, FindingDoubleHolding, FindingOrphanGrant, FindingCheckMismatch}

// What a reconciliation did about a finding.
const (
	ActionImported   = "imported"
	ActionCaseOpened = "case_opened"
	ActionReleased   = "released"
	ActionReported   = "reported"
	// ActionOverCap: more orphans than the cap: none released, an admin decides.
	ActionOverCap = "reported_over_cap"
	// ActionUnproven: on_orphan: release, but the feed sent no completeness
	// proof, so a customer it skipped cannot be told from one it does not
	// hold: reported, never released.
	ActionUnproven = "reported_unproven"
)

// Finding is one thing a reconciliation found, and what it did.
type Finding struct {
	Kind       FindingKind
	CustomerID string
	Products   []string
	Detail     string // plain words
	Action     string
}

// RunStatus is the state of a reconciliation.
type RunStatus string

// The states of a run.
const (
	RunRunning RunStatus = "running"
	RunDone    RunStatus = "done"
	RunFailed  RunStatus = "failed" // the run itself failed (the store); see Error
)

// SourceStatus is the state of one feed within a run.
type SourceStatus string

// The states of a source within a run.
const (
	SourceReading SourceStatus = "reading"
	SourceDone    SourceStatus = "done"   // read completely and trusted: its orphans may be released if Proven
	SourceFailed  SourceStatus = "failed" // partial, garbage, or far fewer customers: nothing released
)

// SourceProgress is a feed's progress within a run.
type SourceProgress struct {
	Product   string
	Name      string
	Status    SourceStatus
	Holdings  int
	Customers int
	// Proven: every page carried a completeness proof and matched it
	// (only then are a done source's orphans released).
	Proven bool
	Error  string
}

// Run is one reconciliation: its progress, its counts, and where its
// findings are (Reconciler.Findings pages them).
type Run struct {
	ID         string
	Status     RunStatus
	StartedAt  time.Time
	FinishedAt time.Time
	StartedBy  string
	Sources    []SourceProgress
	Counts     map[FindingKind]int
	Findings   int // how many are stored (at most MaxStoredFindings)
	Error      string
}

// Case is an open double holding: the customer holds products that
// exclude each other, across product systems (or at arbiter); nothing is
// deleted, someone must contact the customer.
type Case struct {
	CustomerID string
	Products   []string
	Detail     string // plain words, ending "contact the customer"
	OpenedAt   time.Time
	RunID      string
}

// ReconcileStore is what a Reconciler needs of the store beyond Store:
// pipelined reads of grants, a scan of every grant, the run's state and the
// open cases. redisstore.Store implements it.
type ReconcileStore interface {
	// Grants returns the grants of each customer (pipelined: one round trip).
	Grants(ctx context.Context, customers []string) (map[string][]Grant, error)
	// ScanGrants calls fn with batches of customers' grants until every
	// customer with a grant was seen (Cluster: every master). A customer may
	// appear twice if its keys move during the scan.
	ScanGrants(ctx context.Context, fn func(batch map[string][]Grant) error) error
	// MarkSeen records that product's feed lists the customers in run.
	MarkSeen(ctx context.Context, run, product string, customers []string) error
	// Seen reports, per customer, whether MarkSeen recorded it.
	Seen(ctx context.Context, run, product string, customers []string) ([]bool, error)
	// DropRun deletes a run's temporary data (the seen sets of products).
	DropRun(ctx context.Context, run string, products []string) error

	// SaveRun stores a run's state (kept for the retention).
	SaveRun(ctx context.Context, r Run) error
	// Run returns a run: ErrNotFound when unknown or expired.
	Run(ctx context.Context, id string) (Run, error)
	// AddFindings appends findings to a run's list.
	AddFindings(ctx context.Context, run string, fs []Finding) error
	// Findings returns up to limit findings of a run from offset.
	Findings(ctx context.Context, run string, offset, limit int) ([]Finding, error)

	// AcquireLease takes the lease for holder for ttl: false when another
	// holds it (its id is returned).
	AcquireLease(ctx context.Context, holder string, ttl time.Duration) (bool, string, error)
	// RenewLease extends the lease if holder still holds it.
	RenewLease(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	// LeaseHolder returns the id of the run holding the lease ("" when none).
	LeaseHolder(ctx context.Context) (string, error)
	// ReleaseLease gives the lease up if holder holds it.
	ReleaseLease(ctx context.Context, holder string) error

	// ClaimSchedule claims the scheduled run of the coming interval: true
	// for one caller per interval, whatever the instances.
	ClaimSchedule(ctx context.Context, holder string, every time.Duration) (bool, error)

	// LastCount returns the customers product's feed listed in the last
	// successful run (0 when none).
	LastCount(ctx context.Context, product string) (int, error)
	// SetLastCount records a successful run's count.
	SetLastCount(ctx context.Context, product string, n int, at time.Time) error

	// OrphanCandidates returns the grants of product that earlier runs
	// found orphan: check id → when first found.
	OrphanCandidates(ctx context.Context, product string) (map[string]time.Time, error)
	// SetOrphanCandidates replaces them (an empty map drops them all).
	SetOrphanCandidates(ctx context.Context, product string, c map[string]time.Time) error

	// OpenCase records (or refreshes) the customer's case, audited
	// case_opened the first time.
	OpenCase(ctx context.Context, c Case, now time.Time) error
	// Cases returns the open cases, oldest first.
	Cases(ctx context.Context, limit int) ([]Case, error)
	// ResolveCase closes the customer's case, audited case_resolved with
	// actor and note: ErrNotFound when none is open.
	ResolveCase(ctx context.Context, customerID, actor, note string, now time.Time) (Case, error)
}
