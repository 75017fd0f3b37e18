package redisstore

import (
	"strconv"
	"strings"

	"github.com/arbiter-bank/arbiter/validation"
)

// rulesArg writes a rule's rules as the one argument the Lua engine reads
// (rules_of in lua/rules.lua, which documents the format): its limits, its
// cooling-off periods and its minimum rating. The blocklist, an open case
// and the live hold need no data.
func rulesArg(r validation.Rule) string {
	var b strings.Builder
	entry := func(fields ...string) {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strings.Join(fields, "|"))
	}
	for _, l := range r.Limits {
		entry("L", limitKinds[l.Kind], strconv.Itoa(l.Max), l.Name, strings.Join(l.Products, ","))
	}
	for _, c := range r.CoolingOff {
		entry("C", strconv.FormatInt(c.Period.Milliseconds(), 10), c.Name, strings.Join(c.After, ","))
	}
	if r.MinRating > 0 {
		entry("R", strconv.Itoa(r.MinRating))
	}
	return b.String()
}

// limitKinds are the letters of the limit kinds in rulesArg.
var limitKinds = map[validation.LimitKind]string{
	validation.LimitProduct: "p", validation.LimitExclusive: "x", validation.LimitFamily: "f",
}

// worded completes what the scripts leave out of a violation because the
// rule knows it: a family limit's family in words (Note), as the
// reference evaluator gives it.
func worded(vs []validation.Violation, r validation.Rule) []validation.Violation {
	for i, v := range vs {
		if v.Reason != validation.ReasonFamilyLimit {
			continue
		}
		for _, l := range r.Limits {
			if l.Kind == validation.LimitFamily && l.Name == v.Rule {
				vs[i].Note = l.Title
			}
		}
	}
	return vs
}
