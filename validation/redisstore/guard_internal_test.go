package redisstore

import (
	"slices"
	"testing"
)

// TestEveryDecisionIsGuarded: every script that decides starts with the
// outbox's guard (luaGuard), before any write, so that at the outbox's
// bound no decision is made without its record; the scripts that only
// read (and settle an expiry, which is allowed past the bound) do not.
func TestEveryDecisionIsGuarded(t *testing.T) {
	reads := []string{"get", "customer", "audit", "eligibility", "sweep"}
	for _, sc := range append(slices.Clone(scripts), caseScript) {
		guarded := len(sc.sections) > 0 && sc.sections[0] == luaGuard
		if slices.Contains(reads, sc.name) {
			if guarded {
				t.Errorf("script %s only reads, but the outbox's bound refuses it", sc.name)
			}
			continue
		}
		if !guarded {
			t.Errorf("script %s decides, but does not start with luaGuard: at the outbox's bound it would decide without a record", sc.name)
		}
	}
}
