package redisstore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// The Go side of the data model's encodings (the "check" and "events"
// sections of lua/prelude.lua): a change to one is a change to both.
//
// A check is one string wherever it lives (the live hold, an ended record,
// a grant): "c2" and checkFields joined by sep. (Meta shadows the live
// hold field by field: heldFields below.) What earlier releases wrote in
// other encodings is rewritten by the migration (migrate.go), before this
// release reads it; here such a value is an error naming it.

const sep = "\x1f"

// checkFields is the order of a check's fields, for both sides (luaCodec).
var checkFields = [...]string{"id", "product", "status", "fence", "created", "expires", "by", "agent", "secret", "delivered",
	"redeemed_by", "granted", "ended", "ended_by", "end_reason", "otp", "token"}

// heldFields are the fields a held check can have, its status (held) and
// secret aside: what meta shadows of the live hold, one field h.<name> each,
// so that an expiry can be settled once Redis has dropped the hold (the
// prelude's "hold" section). luaCodec generates HELD, HELD_KEYS and
// held_fields(c) from it; TestSettleKeepsEveryField fails when a field set
// on holds is missing.
var heldFields = [...]string{"id", "product", "fence", "created", "expires", "by", "agent", "delivered", "token"}

// storedCheck is a check as the scripts store it.
type storedCheck struct {
	ID, Product, Status     string
	Fence, Created, Expires int64
	By, Agent, Secret       string
	Delivered               bool
	RedeemedBy              string
	Granted, Ended          int64
	EndedBy, EndReason, OTP string
	Token                   string
}

// retiredMsg is the error of a value in an encoding this release no longer
// reads, in Go (errRetired) and in Lua (RETIRED, see luaCodec).
const retiredMsg = "arbiter: value in a retired encoding; run arbiter migrate"

var errRetired = errors.New(retiredMsg)

// parseCheck decodes a stored check.
func parseCheck(raw string) (storedCheck, error) {
	f := strings.Split(raw, sep)
	if len(f)-1 != len(checkFields) || f[0] != "c2" {
		return storedCheck{}, fmt.Errorf("decode check: %q and %d fields, want c2 and %d: %w", f[0], len(f)-1, len(checkFields), errRetired)
	}
	var err error
	num := func(s string) int64 {
		if s == "" || err != nil {
			return 0
		}
		var n float64
		n, err = strconv.ParseFloat(s, 64)
		return int64(n)
	}
	c := storedCheck{
		ID: f[1], Product: f[2], Status: f[3], Fence: num(f[4]), Created: num(f[5]), Expires: num(f[6]),
		By: f[7], Agent: f[8], Secret: f[9], Delivered: f[10] != "", RedeemedBy: f[11],
		Granted: num(f[12]), Ended: num(f[13]), EndedBy: f[14], EndReason: f[15], OTP: f[16],
	}
	c.Token = f[17]
	if err != nil {
		return c, fmt.Errorf("decode check: %w", err)
	}
	return c, nil
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
		EndedAt: msTime(j.Ended), EndedBy: j.EndedBy, EndReason: j.EndReason,
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
	}, nil
}

// eventFields is the order of an event's fields, for both sides (luaCodec).
var eventFields = [...]string{"type", "at", "product", "check_id", "actor", "agent", "reason", "note", "fence", "reasons"}

// decodeEvent reads an audit event: "e2" and eventFields joined by sep.
func decodeEvent(raw string) (validation.Event, error) {
	f := strings.Split(raw, sep)
	if len(f) != len(eventFields)+1 || f[0] != "e2" {
		return validation.Event{}, fmt.Errorf("decode audit event: %d fields, want e2 and %d: %w", len(f)-1, len(eventFields), errRetired)
	}
	at, _ := strconv.ParseFloat(f[2], 64)
	fence, _ := strconv.ParseFloat(f[9], 64)
	ev := validation.Event{
		At: ms(at), Type: validation.EventType(f[1]), Product: f[3], CheckID: f[4],
		Actor: f[5], Agent: f[6], Reason: validation.Reason(f[7]), Note: f[8], Fence: int64(fence),
	}
	if f[10] != "" {
		for _, r := range strings.Split(f[10], ",") {
			ev.Reasons = append(ev.Reasons, validation.Reason(r))
		}
	}
	return ev, nil
}

// checkedEvent is the checked event of a live hold, which the scripts
// append only when the hold ends.
func checkedEvent(c validation.Check) validation.Event {
	return validation.Event{At: c.CreatedAt, Type: validation.EventChecked, Product: c.Product, CheckID: c.ID,
		Actor: c.PlacedBy, Agent: c.AgentID, Fence: c.Fence}
}

func msTime(v int64) time.Time { return ms(float64(v)) }

// luaCodec is the Lua half of the encodings, generated from checkFields
// and eventFields so that the two sides cannot disagree on an order:
// check_encode(c), check_fields(v) (empty fields nil; RETIRED raised for a
// value in another encoding), check_product(v) (the product alone, for
// rules that need no other field; nil for another encoding) and
// event_encode(ev). Straight-line code: no loop, no table of names.
func luaCodec() string {
	var b strings.Builder
	b.WriteString("local SEP = '\\31'\n")
	fmt.Fprintf(&b, "local RETIRED = '%s'\n", retiredMsg)
	encode := func(fn, tag, v string, fields []string) {
		fmt.Fprintf(&b, "local function %s(%s)\n  return '%s'", fn, v, tag)
		for _, f := range fields {
			fmt.Fprintf(&b, " .. SEP .. (%s.%s or '')", v, f)
		}
		b.WriteString("\nend\n")
	}
	encode("check_encode", "c2", "c", checkFields[:])
	encode("event_encode", "e2", "ev", eventFields[:])
	pattern := "'^c2" + strings.Repeat(`\31([^\31]*)`, len(checkFields)) + "$'"
	vars := make([]string, len(checkFields))
	for i := range vars {
		vars[i] = "f" + strconv.Itoa(i+1)
	}
	fmt.Fprintf(&b, "local function check_fields(v)\n  local %s = string.match(v, %s)\n", strings.Join(vars, ", "), pattern)
	b.WriteString("  if not f1 then error(RETIRED) end\n  return {")
	for i, f := range checkFields {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s = %s ~= '' and %s or nil", f, vars[i], vars[i])
	}
	b.WriteString("}\nend\n")
	// held_fields(c) is the flat list of meta's shadow of c, straight-line:
	// a loop building it would run on every check.
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
	product := slices.Index(checkFields[:], "product")
	fmt.Fprintf(&b, "local function check_product(v)\n  return string.match(v, '^c2%s\\31([^\\31]*)')\nend\n",
		strings.Repeat(`\31[^\31]*`, product))
	return b.String()
}
