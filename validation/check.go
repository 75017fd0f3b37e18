package validation

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CheckStatus is the life-cycle state of a check.
type CheckStatus string

// A check is held until it is redeemed, cancelled (by a client, by an OTP
// lock-out, or by a failed policy re-check at redemption) or expires.
const (
	StatusHeld      CheckStatus = "held"
	StatusRedeemed  CheckStatus = "redeemed"
	StatusCancelled CheckStatus = "cancelled"
	StatusExpired   CheckStatus = "expired"
)

// Check is one decision that placed a hold, and what became of it.
type Check struct {
	ID         string
	CustomerID string
	Product    string
	Status     CheckStatus
	Fence      int64 // increases with every hold ever placed on the customer
	CreatedAt  time.Time
	ExpiresAt  time.Time
	PlacedBy   string // client id
	AgentID    string // the branch agent or end user the client acted for, if any
	RedeemedBy string
	GrantedAt  time.Time
	EndedAt    time.Time
	EndedBy    string
	EndReason  string // why a cancelled check ended: "cancelled", "otp_locked", a refusal reason
	// PolicyVersion is the policy version the check was decided under
	// (and, for a grant, redeemed under).
	PolicyVersion string

	// Secret is the TOTP key of a held check. It is set only while the check
	// is held, only for arbiter's own use (computing the current code), and
	// never leaves arbiter.
	Secret []byte
}

// Grant is a product a customer holds.
type Grant struct {
	CustomerID string
	Product    string
	CheckID    string // the check it was redeemed from ("imp_…" for imports)
	Fence      int64
	GrantedAt  time.Time
	RedeemedBy string
	// PolicyVersion is the policy version the grant was redeemed (or
	// imported) under.
	PolicyVersion string
}

// Customer is what arbiter knows of one customer now.
type Customer struct {
	ID     string
	Grants []Grant
	Hold   *Check // the live hold, nil when none
	Block  *Block // nil when not blocked
}

// Block is a customer's entry on the blocklist.
type Block struct {
	Reason string
	Since  time.Time
	Until  time.Time // zero: until lifted
	By     string
}

// EventType names an audit event.
type EventType string

// The audit event types.
const (
	EventChecked   EventType = "checked"
	EventRefused   EventType = "refused"
	EventRedeemed  EventType = "redeemed"
	EventOTPFailed EventType = "otp_failed"
	EventCancelled EventType = "cancelled"
	EventExpired   EventType = "expired"
	EventReleased  EventType = "released"
	EventImported  EventType = "imported"
	EventBlocked   EventType = "blocked"
	EventUnblocked EventType = "unblocked"
	// EventOTPRateLimited: the customer's wrong codes reached the limit;
	// OTP redemptions are refused until the window ends.
	EventOTPRateLimited EventType = "otp_rate_limited"
	// EventCaseOpened: a reconciliation found the customer holding
	// products that exclude each other (a double holding); EventCaseResolved:
	// an admin closed that case, with a note.
	EventCaseOpened   EventType = "case_opened"
	EventCaseResolved EventType = "case_resolved"
)

// EventTypes lists every event type, in the order docs/api.md documents them.
var EventTypes = []EventType{EventChecked, EventRedeemed, EventCancelled, EventExpired, EventReleased,
	EventImported, EventBlocked, EventUnblocked, EventOTPRateLimited, EventCaseOpened, EventCaseResolved,
	EventRefused, EventOTPFailed}

// Attempt reports whether the event records an attempt that changed
// nothing (a refused check, a wrong code). Attempts are kept apart from
// state changes and capped on their own, so no number of them can evict
// the record of a grant.
func (t EventType) Attempt() bool { return t == EventRefused || t == EventOTPFailed }

// Event is one entry of a customer's audit trail.
type Event struct {
	At      time.Time
	Type    EventType
	Product string
	CheckID string
	Actor   string // client id, or "arbiter" for expiries
	Agent   string
	Reason  Reason   // refusals (the first failed rule), cancellations
	Reasons []Reason // refusals: every failed rule, in order
	Note    string   // blocks: the reason given
	Fence   int64
	// PolicyVersion is the policy version of a decision (checked,
	// refused, redeemed, imported, and a cancellation by the rules).
	PolicyVersion string
}

var customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// ValidCustomerID reports whether id is a well-formed customer id. Braces
// are excluded on purpose: ids become Redis Cluster hash tags.
func ValidCustomerID(id string) bool { return customerIDPattern.MatchString(id) }

// CanonicalCustomerID returns the one form under which arbiter knows the
// customer id: its ASCII letters upper-cased, everything else as it is.
// Customer ids are case-insensitive (C-1 and c-1 are one customer), so
// every id that enters arbiter, through the API, the branch UI or a
// holdings feed, passes through here before it names any key, check id,
// audit entry or case. Only ASCII is folded: a well-formed id is ASCII,
// and Unicode case mapping would turn some malformed ids into well-formed
// ones (U+017F, the long s, upper-cases to S). Surrounding white space is
// not trimmed: ValidCustomerID refuses it, as it refuses any other
// character outside the pattern.
func CanonicalCustomerID(id string) string {
	for i := 0; i < len(id); i++ {
		if 'a' <= id[i] && id[i] <= 'z' {
			b := []byte(id)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return id
}

// MaxAgentIDLen is the most characters (not bytes) an agent id may have.
const MaxAgentIDLen = 64

// ValidAgentID reports whether id may name a branch agent: empty (no
// agent), or at most MaxAgentIDLen characters of valid UTF-8 without
// control characters (NUL, escape sequences, newlines that forge log
// lines), format characters (bidi overrides that reorder what an auditor
// reads, zero-width characters) or line and paragraph separators. The id
// is stored with the check and shown in the audit trail and the branch UI.
func ValidAgentID(id string) bool {
	return utf8.RuneCountInString(id) <= MaxAgentIDLen && PlainText(id)
}

// PlainText reports whether s is UTF-8 without control characters (NUL,
// the separator of the stored encodings, line breaks), format characters
// or line and paragraph separators: what every free text arbiter records
// (an agent id, a block's reason) must be, so that it is stored, archived
// and shown as it was written.
func PlainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return false
		}
	}
	return true
}

const (
	checkPrefix  = "chk_"
	importPrefix = "imp_"
	idRandLen    = 20 // base32 characters: 100 bits
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewCheckID returns a fresh check id that carries its customer id, so a
// check can be found in its customer's keys (one Redis Cluster slot) from
// the id alone.
func NewCheckID(customerID string) (string, error) { return newID(checkPrefix, customerID) }

// NewImportID returns a fresh check id for a grant imported from a product
// system (see NewCheckID); its prefix tells an import from a check.
func NewImportID(customerID string) (string, error) { return newID(importPrefix, customerID) }

func newID(prefix, customerID string) (string, error) {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return prefix + idEncoding.EncodeToString(b[:])[:idRandLen] + "_" + customerID, nil
}

// CustomerOfCheck returns the customer id a check id carries, in its
// canonical form (CanonicalCustomerID), whose keys hold the check; false
// when id is not a well-formed check id.
func CustomerOfCheck(id string) (string, bool) {
	head := len(checkPrefix) + idRandLen + 1
	if len(id) <= head || !(strings.HasPrefix(id, checkPrefix) || strings.HasPrefix(id, importPrefix)) || id[head-1] != '_' {
		return "", false
	}
	for _, c := range id[len(checkPrefix) : head-1] {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz234567", c) {
			return "", false
		}
	}
	customer := id[head:]
	return CanonicalCustomerID(customer), ValidCustomerID(customer)
}
