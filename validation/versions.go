package validation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Policy versions. A policy file holds one version (its rules at the top)
// or several, under versions:, each a whole policy (products and rules)
// with the time it comes into force:
//
//	versions:
//	  - version: "2026-01"
//	    products: {...}
//	    exclusive: [...]
//	  - version: "2026-07"
//	    effective_from: 2026-07-01T00:00:00Z
//	    products: {...}
//	    limits: [...]
//
// Every decision is made under the version in force at its time (At), and
// that time is the one the decision is stamped with: arbiter's clock,
// which is Redis's on every instance (redisstore.Clock), so every instance
// switches at the same instant and the version recorded on a decision is
// always the one its time selects. The earliest version also decides
// anything dated before its effective_from, so there is always a policy in
// force. rating: and reconcile: are the file's, shared by every version.

// At returns the version in force at t: the one with the latest
// EffectiveFrom not after t (the earliest before every one); the policy
// itself when it has no versions.
func (p *Policy) At(t time.Time) *Policy {
	if len(p.Versions) == 0 {
		return p
	}
	v := p.Versions[0]
	for _, next := range p.Versions[1:] {
		if next.EffectiveFrom.After(t) {
			break
		}
		v = next
	}
	return v
}

// Latest returns the version that comes into force last (the policy itself
// when it has no versions).
func (p *Policy) Latest() *Policy {
	if len(p.Versions) == 0 {
		return p
	}
	return p.Versions[len(p.Versions)-1]
}

// AllVersions returns the versions, earliest first: the policy itself when
// it has none.
func (p *Policy) AllVersions() []*Policy {
	if len(p.Versions) == 0 {
		return []*Policy{p}
	}
	return p.Versions
}

// validateVersions checks a policy of several versions: the top holds
// only rating: and reconcile:; each version is a whole policy of its own,
// with a distinct name and a distinct effective_from; they are sorted by
// it.
func (p *Policy) validateVersions(lines Lines) error {
	if len(p.Products) > 0 || len(p.Exclusive) > 0 || len(p.Limits) > 0 || len(p.CoolingOff) > 0 || p.Version != "" || !p.EffectiveFrom.IsZero() {
		return fmt.Errorf("line %d: versions: the top of the file then holds only rating: and reconcile:; products and rules go in each version", lines.of("versions"))
	}
	names, froms := map[string]bool{}, map[time.Time]bool{}
	for i, v := range p.Versions {
		at := []string{"versions", strconv.Itoa(i)}
		line := lines.of(at...)
		switch {
		case v == nil:
			return fmt.Errorf("line %d: versions: an empty version", line)
		case len(v.Versions) > 0 || v.Rating != nil || v.Reconcile != nil:
			return fmt.Errorf("line %d: version %q: versions, rating: and reconcile: belong to the top of the file", line, v.Version)
		}
		v.Rating = p.Rating
		if err := v.validateVersion(lines, at); err != nil {
			return err
		}
		switch {
		case names[v.Version]:
			return fmt.Errorf("line %d: version %q is named twice", line, v.Version)
		case froms[v.EffectiveFrom]:
			return fmt.Errorf("line %d: version %q: another version comes into force at %s too", line, v.Version, v.EffectiveFrom.Format(time.RFC3339))
		}
		names[v.Version], froms[v.EffectiveFrom] = true, true
	}
	slices.SortStableFunc(p.Versions, func(a, b *Policy) int { return a.EffectiveFrom.Compare(b.EffectiveFrom) })
	return nil
}

// digest names a version that has no name: a digest of its products and
// rules, so that two different rule sets never share a name.
func (p *Policy) digest() string {
	b, _ := json.Marshal(struct {
		Products   map[string]Product
		Exclusive  [][]string
		Limits     []FamilyLimit
		CoolingOff []CoolingOffRule
	}{p.Products, p.Exclusive, p.Limits, p.CoolingOff})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// LongestCoolingOff is the longest cooling-off period of any version: how
// long a store must remember when a customer's product ended.
func (p *Policy) LongestCoolingOff() time.Duration {
	var d time.Duration
	for _, v := range p.AllVersions() {
		for _, c := range v.CoolingOff {
			d = max(d, c.Period.Duration())
		}
	}
	return d
}

// MinKeepEnded is the least time a store remembers when a customer's
// product ended, so that a cooling-off rule switched on later (by a new
// version) sees the ends of the months before it.
const MinKeepEnded = 90 * 24 * time.Hour

// KeepEnded is how long a store remembers when a customer's product
// ended: the longest cooling-off period of any version, and at least
// MinKeepEnded.
func (p *Policy) KeepEnded() time.Duration { return max(p.LongestCoolingOff(), MinKeepEnded) }
