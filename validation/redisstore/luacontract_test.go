package redisstore

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/validation"
)

// luaTable is one table constructor of a Lua source: its top-level keys
// and the expression each is set to.
type luaTable struct {
	keys []string
	vals map[string]string
}

// luaCode is Lua source with its comments blanked, so that an example in
// a comment is never taken for code.
func luaCode(src string) string {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(src) {
				b.WriteByte(c)
				i++
				c = src[i]
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			c = '\n'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// luaClose returns the index just past the bracket that closes the one at
// src[open] ('{' or '('), skipping strings.
func luaClose(src string, open int) int {
	depth := 0
	var quote byte
	for i := open; i < len(src); i++ {
		c := src[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case strings.IndexByte("{([", c) >= 0:
			depth++
		case strings.IndexByte("})]", c) >= 0:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(src)
}

// luaSplit splits s at its top-level commas.
func luaSplit(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{', '(', '[':
			i = luaClose(s, i) - 1
		case '\'', '"':
			q := s[i]
			for i++; i < len(s) && s[i] != q; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case ',':
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

var luaKey = regexp.MustCompile(`^(?:([A-Za-z_]\w*)|\['(\w+)'\])\s*=\s*(.*)$`)

// parseLuaTable reads the constructor at src[open] ('{').
func parseLuaTable(src string, open int) luaTable {
	t := luaTable{vals: map[string]string{}}
	for _, item := range luaSplit(src[open+1 : luaClose(src, open)-1]) {
		m := luaKey.FindStringSubmatch(item)
		if m == nil {
			continue // a list item
		}
		k := m[1] + m[2]
		t.keys = append(t.keys, k)
		t.vals[k] = m[3]
	}
	return t
}

// luaTables returns every table constructor of src.
func luaTables(src string) []luaTable {
	var out []luaTable
	for i := 0; i < len(src); i++ {
		if src[i] == '{' {
			out = append(out, parseLuaTable(src, i))
		}
	}
	return out
}

func luaFiles(tb testing.TB) map[string]string {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("lua", "*.lua"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no lua/*.lua: %v", err)
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(p)] = luaCode(string(b))
	}
	return out
}

func jsonNames(v any) []string {
	t := reflect.TypeOf(v)
	out := make([]string, t.NumField())
	for i := range out {
		out[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return out
}

func strs[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

var (
	kindRef      = regexp.MustCompile(`^KIND\.(\w+)$`)
	reasonRef    = regexp.MustCompile(`^REASON\.(\w+)$`)
	anyKindRef   = regexp.MustCompile(`\bKIND\.(\w+)`)
	anyReasonRef = regexp.MustCompile(`\bREASON\.(\w+)`)
	violationAt  = regexp.MustCompile(`\bviolation\(`)
)

// transientCheckFields are what a script notes on a decoded check for its
// own use and never stores: migrate.lua's mark of a v1 grant (v1grant),
// grant_decode's of a g1 grant (compact).
var transientCheckFields = []string{"v1grant", "compact"}

// TestLuaSpeaksOnlyWhatGoDeclares: the scripts' replies, violations and
// checks are declared once, in Go (replyKinds, errorReasons,
// violationReasons, wireViolation, each script's reply struct,
// storedCheck), and the scripts name them through the generated KIND,
// REASON and violation. This reads every lua/*.lua and fails on a kind, a
// reason or a field Go does not declare, on one written by hand, and on a
// declaration no script uses.
func TestLuaSpeaksOnlyWhatGoDeclares(t *testing.T) {
	files := luaFiles(t)
	kinds, errs, vios := strs(replyKinds), strs(errorReasons), strs(violationReasons)
	reasons := slices.Concat(errs, vios)
	vioFields := jsonNames(wireViolation{})
	checkFields := slices.Concat(checkCodec.names(), transientCheckFields)
	used := map[string]bool{}

	for name, src := range files {
		for _, m := range anyKindRef.FindAllStringSubmatch(src, -1) {
			if !slices.Contains(kinds, m[1]) {
				t.Errorf("%s: KIND.%s is not a replyKind", name, m[1])
			}
			used["kind "+m[1]] = true
		}
		for _, m := range anyReasonRef.FindAllStringSubmatch(src, -1) {
			if !slices.Contains(reasons, m[1]) {
				t.Errorf("%s: REASON.%s is in neither errorReasons nor violationReasons", name, m[1])
			}
		}
		for _, tab := range luaTables(src) {
			if v, ok := tab.vals["kind"]; ok && !kindRef.MatchString(v) {
				t.Errorf("%s: a reply's kind is %s, not a KIND", name, v)
			}
			if v, ok := tab.vals["reason"]; ok && tab.vals["type"] == "" && !reasonRef.MatchString(v) {
				// An event (type) has its own reasons; anything else with
				// one is a reply or a violation.
				t.Errorf("%s: {reason = %s, ...} is written by hand: use REASON and violation()", name, v)
			}
			if _, ok := tab.vals["status"]; ok {
				for _, k := range tab.keys {
					if !slices.Contains(checkFields, k) {
						t.Errorf("%s: a check's field %s is not in storedCheck: it would never be stored", name, k)
					}
				}
			}
		}
		for _, loc := range violationAt.FindAllStringIndex(src, -1) {
			args := luaSplit(src[loc[1] : luaClose(src, loc[1]-1)-1])
			if len(args) != 2 {
				t.Errorf("%s: violation(%s): want a reason and a table", name, strings.Join(args, ", "))
				continue
			}
			m := reasonRef.FindStringSubmatch(args[0])
			if m == nil || !slices.Contains(vios, m[1]) {
				t.Errorf("%s: violation(%s, ...) is not of a violationReason", name, args[0])
				continue
			}
			used["violation "+m[1]] = true
			if !strings.HasPrefix(args[1], "{") {
				continue // a table read elsewhere (the block)
			}
			for _, k := range parseLuaTable(args[1], 0).keys {
				if !slices.Contains(vioFields, k) || k == "reason" {
					t.Errorf("%s: violation %s has field %s, which wireViolation lacks", name, m[1], k)
				}
				used["field "+k] = true
			}
		}
	}
	for _, sc := range scripts {
		fields := luaFields(reflect.TypeOf(sc.reply))
		for _, section := range sc.sections {
			src := luaCode(section)
			for _, loc := range regexp.MustCompile(`\breply\{`).FindAllStringIndex(src, -1) {
				tab := parseLuaTable(src, loc[1]-1)
				for _, k := range tab.keys {
					if !slices.ContainsFunc(fields, func(f luaField) bool { return f.name == k }) {
						t.Errorf("script %s: reply field %s is not in %T", sc.name, k, sc.reply)
					}
				}
				if m := reasonRef.FindStringSubmatch(tab.vals["reason"]); m != nil {
					if !slices.Contains(errs, m[1]) {
						t.Errorf("script %s: an error reply's reason %s is not in errorReasons", sc.name, m[1])
					}
					used["error "+m[1]] = true
				}
			}
		}
	}

	for _, k := range kinds {
		if !used["kind "+k] {
			t.Errorf("replyKind %s: no script replies it", k)
		}
	}
	for _, r := range errs {
		if !used["error "+r] {
			t.Errorf("errorReasons: no script's error reply is %s", r)
		}
	}
	for _, r := range vios {
		if !used["violation "+r] {
			t.Errorf("violationReasons: no script builds a violation of %s", r)
		}
	}
	for _, f := range vioFields {
		if f != "reason" && !used["field "+f] {
			t.Errorf("wireViolation.%s: no script's violation has it", f)
		}
	}
}

// TestScriptErrorsAreWorded: every reason of an error reply is worded by
// validation (scriptError) and keeps its reason, but the two the methods
// running their scripts word themselves and check_abandoned, which is
// unavailable to a client.
func TestScriptErrorsAreWorded(t *testing.T) {
	for _, r := range errorReasons {
		if r == validation.ReasonGrantNotFound || r == validation.ReasonNotFound {
			continue
		}
		err := scriptError("test", kindError, string(r), "facts", 1)
		e, ok := err.(*validation.Error)
		if !ok || e.Detail == "" {
			t.Errorf("scriptError(%s) = %v, want a worded *validation.Error", r, err)
			continue
		}
		if e.Reason != r && r != reasonCheckAbandoned {
			t.Errorf("scriptError(%s) has reason %s", r, e.Reason)
		}
	}
}

// TestRepliesStartWithTheirKind: kindOf reads a reply's kind from its first
// field, so every reply struct with a kind has it there.
func TestRepliesStartWithTheirKind(t *testing.T) {
	for _, sc := range scripts {
		rt := reflect.TypeOf(sc.reply)
		for i := range rt.NumField() {
			if f := rt.Field(i); f.Type == reflect.TypeOf(replyKind("")) && i != 0 {
				t.Errorf("%s.%s is field %d, want the first", rt.Name(), f.Name, i)
			}
		}
	}
}
