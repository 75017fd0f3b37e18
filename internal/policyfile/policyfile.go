// Package policyfile reads arbiter's policy file (ARBITER_POLICY): it
// decodes the YAML into a validation.Policy, strictly (an unknown key is an
// error naming its line), and has the domain validate it, telling it on
// which line each part was written so that its errors name the line.
// cmd/arbiter reads the file and hands this package the bytes; the domain
// (package validation) knows no YAML library, only the field names its
// types carry in their yaml tags.
package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/arbiter-bank/arbiter/validation"
)

// DefaultYAML is validation.DefaultPolicy written as a policy file, the
// starting point of a policy of one's own.
const DefaultYAML = `products:
  credit_card:   { hold_ttl: 5m,  redeemers: [card-service] }
  personal_loan: { hold_ttl: 10m, redeemers: [loan-service] }
exclusive:
  - [credit_card, personal_loan]
`

// Parse decodes and validates a YAML policy. Unknown keys, unknown
// products in exclusive groups, negative durations and malformed names are
// errors that name the line; every error starts "policy: ".
func Parse(data []byte) (*validation.Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := checkReconcileKeys(&root); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := checkPeriods(&root); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(zeroDurations(data, &root)))
	dec.KnownFields(true)
	var p validation.Policy
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("policy: empty document")
		}
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := p.Validate(lines(&root)); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &p, nil
}

// lines is the validation.Lines of a document: the line of the node at a
// path of mapping keys and sequence indexes; for a mapping key, the line
// the key is written on ("versions:"), which for a block below it is not
// the line its value starts on.
func lines(root *yaml.Node) validation.Lines {
	return func(path ...string) int {
		if len(path) == 0 {
			if n := nodeAt(root); n != nil {
				return n.Line
			}
			return 0
		}
		parent := nodeAt(root, path[:len(path)-1]...)
		if parent != nil && parent.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(parent.Content); i += 2 {
				if k := parent.Content[i]; k.Value == path[len(path)-1] {
					return k.Line
				}
			}
			return 0
		}
		if n := nodeAt(root, path...); n != nil {
			return n.Line
		}
		return 0
	}
}

// nodeAt walks mapping keys and sequence indexes from the document root;
// nil when absent.
func nodeAt(root *yaml.Node, path ...string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// reconcileKeys and sourceKeys are the keys of the reconcile: block and of
// each of its sources.
var (
	reconcileKeys = []string{"interval", "grace", "on_orphan", "page_size", "timeout", "min_share", "release_cap", "sources"}
	sourceKeys    = []string{"product", "url", "key_file", "name"}
)

// checkReconcileKeys refuses a key the reconcile: block or one of its
// sources does not know, naming the keys it does: an operator who
// misspells release_cap must not get a reconciler without one.
func checkReconcileKeys(root *yaml.Node) error {
	r := nodeAt(root, "reconcile")
	if r == nil {
		return nil
	}
	if err := knownKeys(r, "reconcile", reconcileKeys...); err != nil {
		return err
	}
	if srcs := nodeAt(r, "sources"); srcs != nil && srcs.Kind == yaml.SequenceNode {
		for _, s := range srcs.Content {
			if err := knownKeys(s, "reconcile source", sourceKeys...); err != nil {
				return err
			}
		}
	}
	return nil
}

// knownKeys fails on a mapping key not in keys.
func knownKeys(n *yaml.Node, what string, keys ...string) error {
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(keys, k.Value) {
			return fmt.Errorf("line %d: %s: field %s not found (known: %s)", k.Line, what, k.Value, strings.Join(keys, ", "))
		}
	}
	return nil
}

// checkPeriods reads every cooling-off period (at the top and in each
// version) as the decoder will, validation.Period's UnmarshalText, so that
// a period it cannot read is an error naming its line: yaml.v3 calls
// UnmarshalText but returns its error without the line.
func checkPeriods(root *yaml.Node) error {
	var rules []*yaml.Node
	if n := nodeAt(root, "cooling_off"); n != nil && n.Kind == yaml.SequenceNode {
		rules = append(rules, n.Content...)
	}
	if vs := nodeAt(root, "versions"); vs != nil && vs.Kind == yaml.SequenceNode {
		for _, v := range vs.Content {
			if n := nodeAt(v, "cooling_off"); n != nil && n.Kind == yaml.SequenceNode {
				rules = append(rules, n.Content...)
			}
		}
	}
	for _, r := range rules {
		n := nodeAt(r, "period")
		if n == nil || n.Kind != yaml.ScalarNode {
			continue
		}
		var p validation.Period
		if err := p.UnmarshalText([]byte(n.Value)); err != nil {
			name := ""
			if nn := nodeAt(r, "name"); nn != nil {
				name = nn.Value
			}
			return fmt.Errorf("line %d: cooling_off %q: %w", n.Line, name, err)
		}
	}
	return nil
}

// zeroDurations lets a reconcile duration be written 0, as in
// "interval: 0" (only on demand), which yaml.v3 refuses for a
// time.Duration: it returns data with each such 0 written 0s, in its
// place, so every line keeps its number for the errors that name it.
func zeroDurations(data []byte, root *yaml.Node) []byte {
	var zeros []*yaml.Node
	for _, key := range []string{"interval", "grace", "timeout"} {
		if v := nodeAt(root, "reconcile", key); v != nil && v.Kind == yaml.ScalarNode && v.Tag == "!!int" && v.Value == "0" {
			zeros = append(zeros, v)
		}
	}
	// From the end of the document back, so that each insertion leaves
	// the offsets of those before it as they were.
	slices.SortFunc(zeros, func(a, b *yaml.Node) int {
		if a.Line != b.Line {
			return b.Line - a.Line
		}
		return b.Column - a.Column
	})
	out := slices.Clone(data)
	for _, v := range zeros {
		if at, ok := offset(out, v.Line, v.Column); ok && at < len(out) && out[at] == '0' {
			out = slices.Insert(out, at+1, 's')
		}
	}
	return out
}

// offset returns the byte offset of line and column (1-based, the column
// in characters, as yaml.v3 counts them).
func offset(data []byte, line, column int) (int, bool) {
	at := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[at:], '\n')
		if i < 0 {
			return 0, false
		}
		at += i + 1
	}
	for c := 1; c < column; c++ {
		if at >= len(data) || data[at] == '\n' {
			return 0, false
		}
		_, size := utf8.DecodeRune(data[at:])
		at += size
	}
	return at, true
}
