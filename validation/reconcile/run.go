package reconcile

import "time"

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
// findings are (Reconciler.Run pages them).
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
