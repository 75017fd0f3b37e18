package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// cursor reads one source page by page and checks every page: a feed
// that answers out of order, for another product, or loops is garbage, and
// the source fails (nothing of its product is released this run).
type cursor struct {
	src   Source
	prog  *SourceProgress
	page  []Holding
	i     int
	after string // the after of the next page
	last  string // the last customer id read
	done  bool   // every page read
	// unproven says which page came without a completeness proof ("" while
	// every page had one): the source may import and report, not release.
	unproven string
	dead     bool  // failed: dropped from the merge
	store    error // the store failed while reading: the run fails
}

// head returns the next holding, reading the next page when needed.
func (c *cursor) head(ctx context.Context, st *runState) (Holding, bool) {
	for !c.dead && c.i >= len(c.page) {
		if c.done {
			return Holding{}, false
		}
		if err := c.fetch(ctx, st); err != nil {
			var se *storeErr
			if errors.As(err, &se) {
				c.dead, c.store = true, se.error
				break
			}
			c.fail(err)
		}
	}
	if c.dead {
		return Holding{}, false
	}
	return c.page[c.i], true
}

func (c *cursor) fail(err error) {
	c.dead = true
	c.prog.Status, c.prog.Error = SourceFailed, err.Error()
}

func (c *cursor) fetch(ctx context.Context, st *runState) error {
	cfg := st.r.cfg()
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	p, err := c.src.Feed.Page(pctx, c.after, cfg.PageSize)
	if err != nil {
		return fmt.Errorf("page after %q: %w", c.after, err)
	}
	if err := c.checkServed(p); err != nil {
		return fmt.Errorf("page after %q: %w", c.after, err)
	}
	for i := range p.Holdings {
		if p.Holdings[i].Product == "" {
			p.Holdings[i].Product = c.src.Product // a feed lists one product; it may leave it out
		}
		// Ids are case-insensitive: merged, ordered and imported in their
		// canonical form, so a feed's c-1 is arbiter's C-1.
		p.Holdings[i].CustomerID = validation.CanonicalCustomerID(p.Holdings[i].CustomerID)
	}
	if err := c.checkPage(p, cfg.PageSize); err != nil {
		return fmt.Errorf("page after %q: garbage: %w", c.after, err)
	}
	var fresh []string
	for _, h := range p.Holdings {
		if h.CustomerID != c.last {
			fresh = append(fresh, h.CustomerID)
			c.last = h.CustomerID
		}
	}
	if err := st.r.Store.MarkSeen(ctx, st.run.ID, c.src.Product, fresh); err != nil {
		return &storeErr{err}
	}
	c.page, c.i = p.Holdings, 0
	c.prog.Holdings += len(p.Holdings)
	c.prog.Customers += len(fresh)
	if p.Next == "" {
		c.done = true
	}
	c.after = p.Next
	// Progress per page, so an operator watching a long first onboarding
	// sees every source move even while another one is slow.
	if err := st.r.Store.SaveRun(ctx, st.run); err != nil {
		return &storeErr{err}
	}
	return nil
}

// storeErr marks a store failure inside a cursor: it fails the run, not
// the source.
type storeErr struct{ error }

func (e *storeErr) Unwrap() error { return e.error }

func (c *cursor) checkPage(p HoldingsPage, limit int) error {
	last := c.last
	switch {
	case len(p.Holdings) > limit:
		return fmt.Errorf("%d holdings, more than the limit %d", len(p.Holdings), limit)
	case p.Next != "" && len(p.Holdings) == 0:
		return fmt.Errorf("no holdings but a next page %q", p.Next)
	}
	for _, h := range p.Holdings {
		switch {
		case h.Product != c.src.Product:
			return fmt.Errorf("customer %s: product %q, but this feed lists %s", h.CustomerID, h.Product, c.src.Product)
		case !validation.ValidCustomerID(h.CustomerID):
			return fmt.Errorf("customer id %q is malformed", h.CustomerID)
		case h.CustomerID < last || (c.after != "" && h.CustomerID <= validation.CanonicalCustomerID(c.after)):
			return fmt.Errorf("customer %s is out of order (after %q; a feed lists ids in the order of their upper-case form)", h.CustomerID, max(last, validation.CanonicalCustomerID(c.after)))
		}
		last = h.CustomerID
	}
	return nil
}

// checkServed checks the page as the feed served it, before ids are
// folded: the cursor is exact — a next after the page's last customer
// (the next page's first, say) skips every customer in between, page
// after page, and their grants would be found orphan and released — and
// the page matches its completeness proof, the feed's own count and digest
// of the range the page covers, over the ids as the feed wrote them. A
// page without a proof leaves the source unproven.
func (c *cursor) checkServed(p HoldingsPage) error {
	if n := len(p.Holdings); p.Next != "" && n > 0 && p.Next != p.Holdings[n-1].CustomerID {
		return fmt.Errorf("garbage: next %q is not the page's last customer %s (next must be exactly the page's last customer id)", p.Next, p.Holdings[n-1].CustomerID)
	}
	if p.Proof == nil {
		if c.unproven == "" {
			c.unproven = fmt.Sprintf("the page after %q carried no completeness proof", c.after)
		}
		return nil
	}
	end := "the end)"
	if p.Next != "" {
		end = p.Next + "]"
	}
	if read := ProofOf(p.Holdings); read.Customers != p.Proof.Customers || read.Holdings != p.Proof.Holdings ||
		!strings.EqualFold(read.Digest, p.Proof.Digest) {
		return fmt.Errorf("proof mismatch: the feed's proof of (%q, %s states %s; its page lists %s: the feed skipped, dropped or invented customers",
			c.after, end, p.Proof, read)
	}
	return nil
}

// customerHoldings is one customer's holdings across every source.
type customerHoldings struct {
	customer string
	holdings []Holding
	sources  []string // the source name of each holding
}

// merge reads every source in one customer-id order (a k-way merge of
// their pages) and classifies each customer's holdings against arbiter's
// grants, a batch of customers per pipelined read.
func (st *runState) merge(ctx context.Context) error {
	cs := make([]*cursor, len(st.r.Sources))
	for i, s := range st.r.Sources {
		cs[i] = &cursor{src: s, prog: &st.run.Sources[i]}
	}
	batchSize := cmp.Or(st.r.Batch, DefaultBatch)
	var batch []customerHoldings
	for {
		next, any := "", false
		for _, c := range cs {
			if h, ok := c.head(ctx, st); ok && (!any || h.CustomerID < next) {
				next, any = h.CustomerID, true
			}
		}
		if err := storeFailure(cs); err != nil {
			return err
		}
		if !any {
			break
		}
		ch := customerHoldings{customer: next}
		for _, c := range cs {
			for {
				h, ok := c.head(ctx, st)
				if !ok || h.CustomerID != next {
					break
				}
				ch.holdings, ch.sources = append(ch.holdings, h), append(ch.sources, c.src.Name)
				c.i++
			}
		}
		if err := storeFailure(cs); err != nil {
			return err
		}
		if batch = append(batch, ch); len(batch) >= batchSize {
			if err := st.classify(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := st.classify(ctx, batch); err != nil {
		return err
	}
	for _, c := range cs {
		if !c.dead {
			c.prog.Status, c.prog.Proven = SourceDone, c.unproven == ""
			if !c.prog.Proven && st.r.cfg().OnOrphan == validation.OnOrphanRelease {
				st.r.log().Warn("holdings feed without completeness proof: its orphans are reported, never released",
					"reconciliation", st.run.ID, "product", c.src.Product, "why", c.unproven)
			}
		}
	}
	return st.flush(ctx)
}

// storeFailure returns a cursor's store failure: the run cannot go on.
func storeFailure(cs []*cursor) error {
	for _, c := range cs {
		if c.store != nil {
			return c.store
		}
	}
	return nil
}

// classify compares a batch of customers' holdings with their grants.
func (st *runState) classify(ctx context.Context, batch []customerHoldings) error {
	if len(batch) == 0 {
		return nil
	}
	ids := make([]string, len(batch))
	for i, ch := range batch {
		ids[i] = ch.customer
	}
	grants, err := st.r.Store.Grants(ctx, ids)
	if err != nil {
		return err
	}
	for _, ch := range batch {
		if err := st.customer(ctx, ch, grants[ch.customer]); err != nil {
			return err
		}
	}
	return st.flush(ctx)
}

// customer classifies one customer: a double holding across the feeds is
// a case; otherwise each product arbiter lacks is imported (a refusal is a
// case too) and each check id that differs from arbiter's is reported.
func (st *runState) customer(ctx context.Context, ch customerHoldings, grants []validation.Grant) error {
	if clash := st.feedClash(ch); clash != "" {
		return st.openCase(ctx, ch.customer, ch, nil, clash)
	}
	byProduct := map[string][]int{}
	var products []string
	for i, h := range ch.holdings {
		if _, ok := byProduct[h.Product]; !ok {
			products = append(products, h.Product)
		}
		byProduct[h.Product] = append(byProduct[h.Product], i)
	}
	slices.Sort(products)
	for _, p := range products {
		var held []validation.Grant
		for _, g := range grants {
			if g.Product == p {
				held = append(held, g)
			}
		}
		// A holding that names one of arbiter's check ids with no grant of
		// it is never imported: the grant was released (the page is stale)
		// or is not redeemed yet. Other holdings (no check id, or another
		// system's) are imported only while the customer has fewer grants
		// of the product, not matched by a holding's check id, than such
		// holdings: a max > 1 product is not imported twice.
		idx := byProduct[p]
		unmatched, matched := len(held), map[string]bool{}
		var importable []int
		for _, i := range idx {
			h := ch.holdings[i]
			switch _, ours := validation.CustomerOfCheck(h.CheckID); {
			case h.CheckID != "" && slices.ContainsFunc(held, func(g validation.Grant) bool { return g.CheckID == h.CheckID }):
				if !matched[h.CheckID] { // a check listed twice matches its grant once
					matched[h.CheckID] = true
					unmatched--
				}
			case ours:
				detail := fmt.Sprintf("%s lists customer %s's %s from check %s, arbiter holds no grant of it",
					ch.sources[i], ch.customer, st.r.Policy.TitleOf(p), h.CheckID)
				if len(held) > 0 {
					detail += " (arbiter's grant is from " + checkIDs(held) + ")"
				}
				st.record(Finding{Kind: FindingCheckMismatch, CustomerID: ch.customer, Products: []string{p}, Action: ActionReported,
					Detail: detail + ": not imported (the grant was released, or is not redeemed yet)."})
			default:
				importable = append(importable, i)
			}
		}
		for n, i := range importable {
			h := ch.holdings[i]
			if n >= unmatched {
				done, err := st.importHolding(ctx, ch, i)
				if err != nil || done {
					return err
				}
				continue
			}
			if h.CheckID != "" {
				st.record(Finding{Kind: FindingCheckMismatch, CustomerID: ch.customer, Products: []string{p}, Action: ActionReported,
					Detail: fmt.Sprintf("%s lists customer %s's %s from check %s, but arbiter's grant is from %s.",
						ch.sources[i], ch.customer, st.r.Policy.TitleOf(p), h.CheckID, checkIDs(held))})
			}
		}
	}
	return nil
}

func checkIDs(gs []validation.Grant) string {
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.CheckID
	}
	return strings.Join(ids, ", ")
}

// feedClash words the policy rule the customer's holdings break across the
// feeds, or returns "".
func (st *runState) feedClash(ch customerHoldings) string {
	count := map[string]int{}
	for _, h := range ch.holdings {
		count[h.Product]++
	}
	policy := st.r.Policy.At(st.r.now())
	for _, p := range slices.Sorted(maps.Keys(count)) {
		rule, _ := policy.Rule(p)
		for _, l := range rule.Limits {
			n := 0
			for _, q := range l.Products {
				n += count[q]
			}
			switch {
			case l.Kind == validation.LimitProduct && n > l.Max:
				return fmt.Sprintf("more than %d %s", l.Max, rule.Title)
			case l.Kind == validation.LimitExclusive && n > 0:
				return "products that exclude each other"
			case l.Kind == validation.LimitFamily && n > l.Max:
				return fmt.Sprintf("more than %d %s (rule %s)", l.Max, l.Title, l.Name)
			}
		}
	}
	return ""
}

// importHolding imports holding i; a refusal by the policy opens a case
// (done true: the customer needs a person, not more imports).
func (st *runState) importHolding(ctx context.Context, ch customerHoldings, i int) (done bool, err error) {
	h := ch.holdings[i]
	now := st.r.now()
	policy := st.r.Policy.At(now)
	rule, ok := policy.Rule(h.Product)
	if !ok {
		// A product a version before the one in force knew, still held at
		// its system: no rule to import it under.
		st.record(Finding{Kind: FindingImported, CustomerID: ch.customer, Products: []string{h.Product}, Action: ActionReported,
			Detail: fmt.Sprintf("Customer %s holds a %s at %s that arbiter did not know, and policy version %s has no such product: not imported; an admin decides.",
				ch.customer, st.r.Policy.TitleOf(h.Product), ch.sources[i], policy.Version)})
		return false, nil
	}
	id, err := validation.NewImportID(ch.customer)
	if err != nil {
		return false, err
	}
	at := h.IssuedAt
	if at.IsZero() || at.After(now) {
		at = now
	}
	g, err := st.r.Ledger.Import(ctx, validation.ImportRequest{Rule: rule, CustomerID: ch.customer, CheckID: id, Actor: validation.ReconcilerActor, GrantedAt: at, Now: now})
	var ve *validation.Error
	switch {
	case err == nil:
		detail := fmt.Sprintf("Customer %s holds a %s at %s since %s that arbiter did not know: imported as grant %s.",
			ch.customer, rule.Title, ch.sources[i], at.UTC().Format(validation.DateLayout), g.CheckID)
		if h.CheckID != "" {
			detail += " " + ch.sources[i] + " names check " + h.CheckID + ", not one of arbiter's."
		}
		st.record(Finding{Kind: FindingImported, CustomerID: ch.customer, Products: []string{h.Product}, Action: ActionImported, Detail: detail})
		return false, nil
	case errors.As(err, &ve) && len(ve.Violations) > 0:
		if !slices.ContainsFunc(ve.Violations, func(v validation.Violation) bool {
			return v.Reason != validation.ReasonAlreadyHoldsProduct || v.Product != h.Product
		}) {
			// The grant appeared since the batch was read (a redemption, or
			// another run's import): arbiter knows the product now.
			return false, nil
		}
		return true, st.openCase(ctx, ch.customer, ch, ve.Violations, "")
	}
	return false, err
}

// openCase records a double holding as a case and a finding: the feeds'
// holdings, and the arbiter grants that refused an import.
func (st *runState) openCase(ctx context.Context, customer string, ch customerHoldings, vs []validation.Violation, clash string) error {
	var parts, products []string
	for i, h := range ch.holdings {
		parts = append(parts, fmt.Sprintf("a %s at %s%s", st.r.Policy.TitleOf(h.Product), ch.sources[i], since(h.IssuedAt)))
		products = append(products, h.Product)
	}
	for _, v := range vs {
		if v.Product == "" {
			continue
		}
		parts = append(parts, fmt.Sprintf("a %s granted at arbiter%s", st.r.Policy.TitleOf(v.Product), since(v.Since)))
		products = append(products, v.Product)
	}
	slices.Sort(products)
	products = slices.Compact(products)
	detail := fmt.Sprintf("Customer %s holds %s: contact the customer.", customer, joinAnd(parts))
	if clash != "" && strings.HasPrefix(clash, "more than") {
		detail = fmt.Sprintf("Customer %s holds %s (%s): contact the customer.", customer, joinAnd(parts), clash)
	}
	c := validation.Case{CustomerID: customer, Products: products, Detail: detail, OpenedAt: st.r.now(), RunID: st.run.ID}
	if err := st.r.Store.OpenCase(ctx, c, c.OpenedAt); err != nil {
		return err
	}
	st.cased[customer] = true
	st.record(Finding{Kind: FindingDoubleHolding, CustomerID: customer, Products: products, Detail: detail, Action: ActionCaseOpened})
	return nil
}

func since(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " since " + t.UTC().Format(validation.DateLayout)
}

func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// orphans finds grants older than the grace, of products whose feeds were
// read completely and trusted, whose customers those feeds do not list:
// a scan of every grant, checked against the run's seen sets. With
// on_orphan: release, a first pass counts them so that a product with more
// orphans than its cap releases none (they are reported instead).
func (st *runState) orphans(ctx context.Context) error {
	trusted := map[string]bool{}
	for _, s := range st.run.Sources {
		if s.Status == SourceDone {
			trusted[s.Product] = true
		}
	}
	if len(trusted) == 0 {
		return nil
	}
	release := st.r.cfg().OnOrphan == validation.OnOrphanRelease
	// proven: the trusted products whose feeds proved every page; only
	// their orphans may be released.
	proven := map[string]bool{}
	for _, s := range st.run.Sources {
		if s.Status == SourceDone && s.Proven && release {
			proven[s.Product] = true
		}
	}
	allowed := map[string]bool{}
	if len(proven) > 0 {
		total, orphans := map[string]int{}, map[string]int{}
		err := st.r.Store.ScanGrants(ctx, func(batch map[string][]validation.Grant) error {
			return st.eachOrphan(ctx, batch, proven, total, func(string, validation.Grant) error {
				return nil
			}, orphans)
		})
		if err != nil {
			return err
		}
		for p := range proven {
			limit := max(MinReleaseCap, total[p]/10)
			if c := st.r.cfg().ReleaseCap; c > 0 {
				limit = c
			}
			allowed[p] = orphans[p] <= limit
			if !allowed[p] {
				st.r.log().Warn("orphan grants over the cap: none released, an admin decides",
					"reconciliation", st.run.ID, "product", p, "orphans", orphans[p], "cap", limit, "grants", total[p])
			}
		}
	}
	// Two-run confirmation: an orphan is released only if an earlier
	// complete run, at least grace before this one started, found the same
	// grant orphan too (see docs/reconciliation.md "Why an orphan is released only on a
	// second sighting"). This run's candidates replace the earlier ones;
	// an unproven feed's run sights nothing, so it drops them.
	prior, next := map[string]map[string]time.Time{}, map[string]map[string]time.Time{}
	for p := range trusted {
		if !release {
			continue
		}
		next[p] = map[string]time.Time{}
		if !proven[p] {
			continue
		}
		c, err := st.r.Store.OrphanCandidates(ctx, p)
		if err != nil {
			return err
		}
		prior[p] = c
	}
	err := st.r.Store.ScanGrants(ctx, func(batch map[string][]validation.Grant) error {
		err := st.eachOrphan(ctx, batch, trusted, nil, func(customer string, g validation.Grant) error {
			var first time.Time
			if proven[g.Product] {
				first = cmp.Or(prior[g.Product][g.CheckID], st.run.StartedAt)
				next[g.Product][g.CheckID] = first
			}
			return st.orphan(ctx, customer, g, release, proven[g.Product], allowed[g.Product], first)
		}, nil)
		if err != nil {
			return err
		}
		return st.flush(ctx)
	})
	if err != nil {
		return err
	}
	for p, c := range next {
		if err := st.r.Store.SetOrphanCandidates(ctx, p, c); err != nil {
			return err
		}
	}
	return nil
}

// eachOrphan calls fn for every orphan grant in the batch, counting the
// trusted products' grants in total and their orphans in orphans (each
// when non-nil).
func (st *runState) eachOrphan(ctx context.Context, batch map[string][]validation.Grant, trusted map[string]bool, total map[string]int, fn func(string, validation.Grant) error, orphans map[string]int) error {
	old := map[string][]string{} // product → customers with an old grant of it
	for c, gs := range batch {
		for _, g := range gs {
			if !trusted[g.Product] {
				continue
			}
			if total != nil {
				total[g.Product]++
			}
			if cs := old[g.Product]; g.GrantedAt.Before(st.cutoff) && (len(cs) == 0 || cs[len(cs)-1] != c) {
				old[g.Product] = append(old[g.Product], c)
			}
		}
	}
	for p, customers := range old {
		slices.Sort(customers)
		seen, err := st.r.Store.Seen(ctx, st.run.ID, p, customers)
		if err != nil {
			return err
		}
		for i, c := range customers {
			if seen[i] {
				continue
			}
			for _, g := range batch[c] {
				if g.Product != p || !g.GrantedAt.Before(st.cutoff) {
					continue
				}
				if orphans != nil {
					orphans[p]++
				}
				if err := fn(c, g); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// orphan releases or reports one orphan grant; first is when a run
// first found it orphan (release mode, a proven feed): it is released only
// once that is at least grace before this run started.
func (st *runState) orphan(ctx context.Context, customer string, g validation.Grant, release, proven, allowed bool, first time.Time) error {
	grace := st.r.cfg().Grace
	title := st.r.Policy.TitleOf(g.Product)
	detail := fmt.Sprintf("arbiter's grant %s of a %s to customer %s, since %s, is not listed by the %s feed",
		g.CheckID, title, customer, g.GrantedAt.UTC().Format(validation.DateLayout), g.Product)
	f := Finding{Kind: FindingOrphanGrant, CustomerID: customer, Products: []string{g.Product}, Action: ActionReported}
	switch {
	case !release:
		f.Detail = detail + ": reported (on_orphan: report)."
	case !proven:
		f.Action, f.Detail = ActionUnproven, detail+": not released, the feed sent no completeness proof (a customer it skipped looks the same); serve the proof to let runs release."
	case st.cased[customer]:
		f.Detail = detail + ": not released, the customer has an open case."
	case !allowed:
		f.Action, f.Detail = ActionOverCap, detail+": not released, more orphans than this run may release; an admin decides."
	case st.run.StartedAt.Before(first.Add(grace)):
		f.Detail = fmt.Sprintf("%s: not released yet, first found orphan at %s; it will be released if still missing from the feed at the next run at least %s after that.",
			detail, first.UTC().Format(time.RFC3339), grace)
	default:
		_, err := st.r.Ledger.Release(ctx, validation.ReleaseRequest{CustomerID: customer, Product: g.Product, CheckID: g.CheckID, Actor: validation.ReconcilerActor, Now: st.r.now(),
			KeepEnded: st.r.Policy.KeepEnded()})
		switch {
		case errors.Is(err, validation.ErrGrantNotFound):
			return nil // released meanwhile (or seen twice by the scan)
		case err != nil:
			return err
		}
		f.Action, f.Detail = ActionReleased, detail+": released."
	}
	st.record(f)
	return nil
}
