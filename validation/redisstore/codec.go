package redisstore

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// The Go side of the data model's encodings (the "check" and "events"
// sections of lua/prelude.lua), declared once for both sides.
//
// A check is one string wherever it lives (the live hold, an ended record,
// a reply's grant): "c2" and the fields of storedCheck joined by sep. (Meta
// shadows the live hold field by field: the fields tagged held.) An audit
// event is "e2" and the fields of storedEvent, the same way; the ledger's
// grant "g1" and the fields of storedGrant. What earlier releases
// wrote in other encodings is rewritten by the migration (migrate.go)
// before this release reads it; here such a value is an error naming it.

const sep = "\x1f"

// storedCheck is a check as the scripts store it. Its fields, in this
// order, are the wire format (wireCodec); luaCodec generates the Lua
// encoder and decoder from the same declaration, so a field added here is
// stored and read by both sides (docs/architecture.md, "Adding a field to
// the hold", says what else sets it). Tag options: held, the fields a held
// check can have, its status (held) and secret aside: what meta shadows of
// the live hold, one field h.<name> each, so that an expiry can be settled
// once Redis has dropped the hold (the prelude's "hold" section;
// TestSettleKeepsEveryField fails when a field set on holds lacks it);
// added, a field appended after the encoding first shipped.
//
// The field list only ever grows at its end, so that releases next to
// each other read each other's values during a rolling deploy or a
// rollback: a value written before an added field existed lacks it and
// reads it as empty; a value with fields beyond the last one this release
// knows (written by a newer release) reads the ones it knows. Anything else
// (another tag, fewer fields than the first release had, JSON) is a
// retired encoding, which arbiter migrate rewrites.
type storedCheck struct {
	ID         string `lua:"id,held"`
	Product    string `lua:"product,held"`
	Status     string `lua:"status"`
	Fence      int64  `lua:"fence,held"`
	Created    int64  `lua:"created,held"`
	Expires    int64  `lua:"expires,held"`
	By         string `lua:"by,held"`
	Agent      string `lua:"agent,held"`
	Secret     string `lua:"secret"` // hex; the live hold's only
	Delivered  bool   `lua:"delivered,held"`
	RedeemedBy string `lua:"redeemed_by"`
	Granted    int64  `lua:"granted"`
	Ended      int64  `lua:"ended"`
	EndedBy    string `lua:"ended_by"`
	EndReason  string `lua:"end_reason"`
	OTP        string `lua:"otp"`              // otp_digest of the code that redeemed it
	Token      string `lua:"token,held,added"` // digest of the approval token's secret (redeem_token.lua)
	// Version is the policy version the check was decided under;
	// GrantedVersion the one it was redeemed (or imported) under, when
	// that is another.
	Version        string `lua:"version,held,added"`
	GrantedVersion string `lua:"granted_version,added"`
}

// storedEvent is an audit event as the scripts store it, in wire order
// like storedCheck. Reasons are comma-separated on the wire.
type storedEvent struct {
	Type    validation.EventType `lua:"type"`
	At      int64                `lua:"at"`
	Product string               `lua:"product"`
	CheckID string               `lua:"check_id"`
	Actor   string               `lua:"actor"`
	Agent   string               `lua:"agent"`
	Reason  validation.Reason    `lua:"reason"`
	Note    string               `lua:"note"`
	Fence   int64                `lua:"fence"`
	Reasons []validation.Reason  `lua:"reasons"`
	Version string               `lua:"version,added"` // the policy version of a decision
}

// storedGrant is a grant as the ledger keeps it (K_GRANTS: check id ->
// "g1" and these fields, in wire order): kept for ever, so it holds only
// what is read for ever — by the rules, a release, the customer's view and
// reconciliation — and is short enough (64 bytes for typical names) that
// the ledger stays a listpack. The check id is the hash field, not
// repeated. What only a replay of the redemption or a read of the check
// needs (the OTP and token digests, placed, expires, placer, agent) is in
// the check's record, written with the grant, for the retention. Grants an
// earlier release wrote are whole checks ("c2"), read as such.
type storedGrant struct {
	Product    string `lua:"product"`
	Granted    int64  `lua:"granted"`
	Lag        int64  `lua:"lag"` // granted - fence: a few ms for a redemption
	RedeemedBy string `lua:"redeemed_by"`
	Imported   bool   `lua:"imported"`
	// Version is the policy version it was granted under, a digest's
	// "sha256:" written ":" (a version's name begins with a letter or a
	// digit).
	Version string `lua:"version"`
}

var (
	checkCodec = newWireCodec("check", "c2", storedCheck{})
	eventCodec = newWireCodec("audit event", "e2", storedEvent{})
	grantCodec = newWireCodec("grant", "g1", storedGrant{})
)

// digestPrefix is how an unnamed policy version begins (validation's
// digest), written ':' in a stored grant.
const digestPrefix = "sha256"

// wireCodec is one encoding: a tag, then the fields of a struct in
// declaration order, each after sep. A field is a string, an int64 (Lua
// writes a number as it prints it; milliseconds and fences print exactly),
// a bool ('1' or empty) or a slice of strings (comma-separated); an empty
// field decodes as the zero value.
type wireCodec struct {
	what     string // in errors: "check"
	tag      string
	prefix   string // tag + sep
	fields   []wireField
	required int // the fields of the encoding's first release; the rest were added
}

type wireField struct {
	name  string // the Lua name
	index int
	kind  reflect.Kind
	held  bool
	added bool
}

func newWireCodec(what, tag string, v any) wireCodec {
	t := reflect.TypeOf(v)
	w := wireCodec{what: what, tag: tag, prefix: tag + sep}
	for i := range t.NumField() {
		sf := t.Field(i)
		lua, ok := sf.Tag.Lookup("lua")
		if !ok {
			panic(fmt.Sprintf("redisstore: field %s.%s has no lua tag", t.Name(), sf.Name))
		}
		name, opts, _ := strings.Cut(lua, ",")
		f := wireField{name: name, index: i, kind: sf.Type.Kind()}
		for opt := range strings.SplitSeq(opts, ",") {
			switch opt {
			case "held":
				f.held = true
			case "added":
				f.added = true
			case "":
			default:
				panic(fmt.Sprintf("redisstore: field %s.%s: unknown lua tag option %q", t.Name(), sf.Name, opt))
			}
		}
		switch {
		case f.kind == reflect.String, f.kind == reflect.Int64, f.kind == reflect.Bool:
		case f.kind == reflect.Slice && sf.Type.Elem().Kind() == reflect.String:
		default:
			panic(fmt.Sprintf("redisstore: field %s.%s: a wire field cannot be a %s", t.Name(), sf.Name, sf.Type))
		}
		switch {
		case !f.added && w.required != len(w.fields):
			panic(fmt.Sprintf("redisstore: field %s.%s: fields are added at the end only", t.Name(), sf.Name))
		case !f.added:
			w.required++
		}
		w.fields = append(w.fields, f)
	}
	return w
}

// names are the Lua names of the fields, in wire order.
func (w wireCodec) names() []string {
	out := make([]string, len(w.fields))
	for i, f := range w.fields {
		out[i] = f.name
	}
	return out
}

// heldNames are the Lua names of the fields tagged held.
func (w wireCodec) heldNames() []string {
	var out []string
	for _, f := range w.fields {
		if f.held {
			out = append(out, f.name)
		}
	}
	return out
}

// decode fills *dst, a zero value of the codec's struct, from raw: fields
// added since raw was written are left empty, fields added by a newer
// release are skipped. A value in another encoding (another tag, fewer
// fields than the first release wrote) is errRetired.
func (w wireCodec) decode(dst any, raw string) error {
	rest, ok := strings.CutPrefix(raw, w.prefix)
	if n := strings.Count(rest, sep) + 1; !ok || n < w.required {
		return fmt.Errorf("decode %s: %d fields, want %s and at least %d: %w", w.what, strings.Count(raw, sep)+1, w.tag, w.required, errRetired)
	}
	v := reflect.ValueOf(dst).Elem()
	for _, f := range w.fields {
		if rest == "" && f.added {
			break // written before f was added: the rest are empty
		}
		var s string
		s, rest, _ = strings.Cut(rest, sep)
		if s == "" {
			continue
		}
		if err := f.set(v.Field(f.index), s); err != nil {
			return fmt.Errorf("decode %s: field %s: %w", w.what, f.name, err)
		}
	}
	return nil
}

func (f wireField) set(v reflect.Value, s string) error {
	switch f.kind {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			// Lua prints a number that is not an integer as a float.
			x, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil {
				return err
			}
			n = int64(x)
		}
		v.SetInt(n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), strings.Count(s, ",")+1, strings.Count(s, ",")+1))
		for i := 0; s != ""; i++ {
			var item string
			item, s, _ = strings.Cut(s, ",")
			v.Index(i).SetString(item)
		}
	}
	return nil
}

// retiredMsg is the error of a value in an encoding this release no longer
// reads, in Go (errRetired) and in Lua (RETIRED, see luaCodec).
const retiredMsg = "arbiter: value in a retired encoding; run arbiter migrate"

var errRetired = errors.New(retiredMsg)

// parseCheck decodes a stored check.
func parseCheck(raw string) (storedCheck, error) {
	var c storedCheck
	err := checkCodec.decode(&c, raw)
	return c, err
}

// decodeCheck returns the domain's check from a stored one, with its
// Secret when it is the live hold.
func decodeCheck(customer, raw string) (validation.Check, error) {
	j, err := parseCheck(raw)
	if err != nil {
		return validation.Check{}, err
	}
	c := validation.Check{
		ID: j.ID, CustomerID: customer, Product: j.Product, Status: validation.CheckStatus(j.Status),
		Fence: j.Fence, CreatedAt: msTime(j.Created), ExpiresAt: msTime(j.Expires),
		PlacedBy: j.By, AgentID: j.Agent, RedeemedBy: j.RedeemedBy, GrantedAt: msTime(j.Granted),
		EndedAt: msTime(j.Ended), EndedBy: j.EndedBy, EndReason: j.EndReason, PolicyVersion: j.Version,
	}
	if j.Secret != "" {
		if c.Secret, err = hex.DecodeString(j.Secret); err != nil {
			return c, fmt.Errorf("decode hold secret: %w", err)
		}
	}
	return c, nil
}

// decodeGrant returns the grant a stored grant (a redeemed or imported
// check) records. It is the one reader of the grants hash's values.
func decodeGrant(customer, raw string) (validation.Grant, error) {
	j, err := parseCheck(raw)
	if err != nil {
		return validation.Grant{}, fmt.Errorf("decode grant: %w", err)
	}
	return validation.Grant{
		CustomerID: customer, Product: j.Product, CheckID: j.ID,
		Fence: j.Fence, GrantedAt: msTime(j.Granted), RedeemedBy: j.RedeemedBy,
		PolicyVersion: cmp.Or(j.GrantedVersion, j.Version), // kept only when it differs from the check's
	}, nil
}

// decodeStoredGrant returns the grant the ledger keeps under field id:
// "g1" (storedGrant), or a whole check an earlier release wrote.
func decodeStoredGrant(customer, id, raw string) (validation.Grant, error) {
	if strings.HasPrefix(raw, checkCodec.prefix) {
		return decodeGrant(customer, raw)
	}
	var g storedGrant
	if err := grantCodec.decode(&g, raw); err != nil {
		return validation.Grant{}, err
	}
	version := g.Version
	if strings.HasPrefix(version, ":") {
		version = digestPrefix + version
	}
	return validation.Grant{
		CustomerID: customer, Product: g.Product, CheckID: id,
		Fence: g.Granted - g.Lag, GrantedAt: msTime(g.Granted), RedeemedBy: g.RedeemedBy, PolicyVersion: version,
	}, nil
}

// decodeEvent reads an audit event (storedEvent).
func decodeEvent(raw string) (validation.Event, error) {
	var se storedEvent
	if err := eventCodec.decode(&se, raw); err != nil {
		return validation.Event{}, err
	}
	return validation.Event{At: msTime(se.At), Type: se.Type, Product: se.Product, CheckID: se.CheckID,
		Actor: se.Actor, Agent: se.Agent, Reason: se.Reason, Reasons: se.Reasons, Note: se.Note, Fence: se.Fence,
		PolicyVersion: se.Version}, nil
}

// checkedEvent is the checked event of a live hold, which the scripts
// append only when the hold ends.
func checkedEvent(c validation.Check) validation.Event {
	return validation.Event{At: c.CreatedAt, Type: validation.EventChecked, Product: c.Product, CheckID: c.ID,
		Actor: c.PlacedBy, Agent: c.AgentID, Fence: c.Fence, PolicyVersion: c.PolicyVersion}
}

func msTime(v int64) time.Time { return ms(float64(v)) }

// luaCodec is the Lua half of the encodings, generated from storedCheck
// and storedEvent so that the two sides cannot disagree on an order:
// check_encode(c), check_fields(v) (empty fields nil; RETIRED raised for a
// value in another encoding), check_product(v) (the product alone, for
// rules that need no other field; nil for another encoding), event_encode(ev),
// grant_encode(g), grant_fields(v) and grant_product_of(v) (storedGrant's),
// and HELD, HELD_KEYS and held_fields(c) for meta's shadow of the hold.
// Straight-line code: no loop, no table of names.
func luaCodec() string {
	var b strings.Builder
	b.WriteString("local SEP = '\\31'\n")
	fmt.Fprintf(&b, "local RETIRED = '%s'\n", retiredMsg)
	encode := func(fn, v string, w wireCodec) {
		fmt.Fprintf(&b, "local function %s(%s)\n  return '%s'", fn, v, w.tag)
		for _, f := range w.names() {
			fmt.Fprintf(&b, " .. SEP .. (%s.%s or '')", v, f)
		}
		b.WriteString("\nend\n")
	}
	encode("check_encode", "c", checkCodec)
	encode("event_encode", "ev", eventCodec)
	encode("grant_encode", "g", grantCodec)
	// An added field's separator is optional, as the field is (the field
	// before it cannot contain one), and nothing anchors the end: a value
	// a newer release wrote has fields after the last one known here.
	decode := func(fn string, w wireCodec) {
		names := w.names()
		pattern := "'^" + w.tag + strings.Repeat(`\31([^\31]*)`, w.required) +
			strings.Repeat(`\31?([^\31]*)`, len(names)-w.required) + "'"
		vars := make([]string, len(names))
		for i := range vars {
			vars[i] = "f" + strconv.Itoa(i+1)
		}
		fmt.Fprintf(&b, "local function %s(v)\n  local %s = string.match(v, %s)\n", fn, strings.Join(vars, ", "), pattern)
		b.WriteString("  if not f1 then error(RETIRED) end\n  return {")
		for i, f := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = %s ~= '' and %s or nil", f, vars[i], vars[i])
		}
		b.WriteString("}\nend\n")
	}
	decode("check_fields", checkCodec)
	decode("grant_fields", grantCodec)
	checkFields := checkCodec.names()
	// held_fields(c) is the flat list of meta's shadow of c, straight-line:
	// a loop building it would run on every check.
	heldFields := checkCodec.heldNames()
	quoted := func(prefix string) string {
		q := make([]string, len(heldFields))
		for i, f := range heldFields {
			q[i] = "'" + prefix + f + "'"
		}
		return strings.Join(q, ", ")
	}
	fmt.Fprintf(&b, "local HELD = {%s}\nlocal HELD_KEYS = {%s}\nlocal function held_fields(c)\n  return ", quoted(""), quoted("h."))
	for i, f := range heldFields {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "'h.%s', c.%s or ''", f, f)
	}
	b.WriteString("\nend\n")
	product := slices.Index(checkFields, "product")
	fmt.Fprintf(&b, "local function check_product(v)\n  return string.match(v, '^c2%s\\31([^\\31]*)')\nend\n",
		strings.Repeat(`\31[^\31]*`, product))
	fmt.Fprintf(&b, "local function grant_product_of(v)\n  return string.match(v, '^g1%s\\31([^\\31]*)')\nend\n",
		strings.Repeat(`\31[^\31]*`, slices.Index(grantCodec.names(), "product")))
	return b.String()
}
