package validation_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/validation"
)

func TestCustomerIDs(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"C-1001", true},
		{"a", true},
		{"0:branch.x_y-z", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"-C", false},
		{"C{1}", false}, // braces would break the Redis Cluster hash tag
		{"C 1", false},
		{"C/1", false},
		{"Ç1", false},
	}
	for _, tt := range tests {
		if got := validation.ValidCustomerID(tt.id); got != tt.want {
			t.Errorf("ValidCustomerID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestAgentIDs(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"", true},
		{"ana", true},
		{"Ana Brás (Lisboa-01)", true},
		{strings.Repeat("é", validation.MaxAgentIDLen), true}, // characters, not bytes
		{strings.Repeat("a", validation.MaxAgentIDLen+1), false},
		{"a\x00b", false},
		{"a\xffb", false}, // invalid UTF-8
		{"\x1b[2Jana", false},
		{"ana\nforged line", false},
		{"ana\t", false},
		{"ana\x7f", false},
		{"ana\u0085", false}, // C1 control
		{"ana\u202e", false}, // bidi override
		{"an\u200ba", false}, // zero-width space
		{"ana\u2028", false}, // line separator
	}
	for _, tt := range tests {
		if got := validation.ValidAgentID(tt.id); got != tt.want {
			t.Errorf("ValidAgentID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestCheckIDCarriesCustomer(t *testing.T) {
	for _, customer := range []string{"C-1001", "a", "x_y.z:1", strings.Repeat("z", 64)} {
		id, err := validation.NewCheckID(customer)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := validation.CustomerOfCheck(id)
		if want := validation.CanonicalCustomerID(customer); !ok || got != want {
			t.Errorf("CustomerOfCheck(%q) = %q, %v; want %q", id, got, ok, want)
		}
		other, _ := validation.NewCheckID(customer)
		if other == id {
			t.Errorf("two check ids are equal: %s", id)
		}
	}
	for _, bad := range []string{"", "chk_", "chk_short_C-1", "xyz_aaaaaaaaaaaaaaaaaaaa_C-1", "chk_AAAAAAAAAAAAAAAAAAAA_C-1", "chk_aaaaaaaaaaaaaaaaaaaa-C-1", "chk_aaaaaaaaaaaaaaaaaaaa_C{1}"} {
		if c, ok := validation.CustomerOfCheck(bad); ok {
			t.Errorf("CustomerOfCheck(%q) = %q, true; want false", bad, c)
		}
	}
}

func TestErrorsMatchTheirSentinel(t *testing.T) {
	err := fmt.Errorf("redeem: %w", validation.Errorf(validation.ReasonOTPLocked, "burnt"))
	if !errors.Is(err, validation.ErrOTPLocked) {
		t.Fatal("wrapped otp_locked does not match ErrOTPLocked")
	}
	if errors.Is(err, validation.ErrOTPInvalid) {
		t.Fatal("otp_locked matches ErrOTPInvalid")
	}
	if got, want := validation.ReasonOf(err), validation.ReasonOTPLocked; got != want {
		t.Fatalf("ReasonOf = %s, want %s", got, want)
	}
	if got, want := validation.ReasonOf(errors.New("boom")), validation.ReasonInternal; got != want {
		t.Fatalf("ReasonOf(plain) = %s, want %s", got, want)
	}
}

func TestActorRoles(t *testing.T) {
	admin := validation.Actor{ID: "ops", Roles: []validation.Role{validation.RoleAdmin}}
	checker := validation.Actor{ID: "b", Roles: []validation.Role{validation.RoleChecker}}
	if !admin.Has(validation.RoleRedeemer) || !admin.Has(validation.RoleChecker) {
		t.Error("admin lacks a role")
	}
	if checker.Has(validation.RoleRedeemer) || checker.Has(validation.RoleAdmin) {
		t.Error("checker has a role it was not given")
	}
}

// TestActorPlaced: the placer of a check is its client and, for a branch
// agent, the agent; an agent_id an API client sent is only a label.
func TestActorPlaced(t *testing.T) {
	byPortal := validation.Check{PlacedBy: "branch-portal", AgentID: "ana"}
	byAna := validation.Check{PlacedBy: "branch-ui", AgentID: "ana"}
	for _, tc := range []struct {
		actor validation.Actor
		check validation.Check
		want  bool
	}{
		{validation.Actor{ID: "branch-portal"}, byPortal, true},
		{validation.Actor{ID: "card-service"}, byPortal, false},
		{validation.Actor{ID: "branch-ui", Agent: "ana"}, byPortal, false},
		{validation.Actor{ID: "branch-ui", Agent: "ana"}, byAna, true},
		{validation.Actor{ID: "branch-ui", Agent: "bruno"}, byAna, false},
		{validation.Actor{ID: "ops", Roles: []validation.Role{validation.RoleAdmin}}, byAna, false},
	} {
		if got, want := tc.actor.Placed(tc.check), tc.want; got != want {
			t.Errorf("%+v.Placed(%+v) = %v, want %v", tc.actor, tc.check, got, want)
		}
	}
}

func TestCanonicalCustomerID(t *testing.T) {
	tests := []struct{ id, want string }{
		{"C-1", "C-1"},
		{"c-1", "C-1"},
		{"aBc.d_e:f-9", "ABC.D_E:F-9"},
		{"\u017f-1", "\u017f-1"}, // the long s: Unicode upper-cases it to S, and ſ-1 is no id
		{"C-\u0131", "C-\u0131"}, // the dotless i, likewise to I
		{" c-1", " C-1"},         // not trimmed: ValidCustomerID refuses it
	}
	for _, tt := range tests {
		if got := validation.CanonicalCustomerID(tt.id); got != tt.want {
			t.Errorf("CanonicalCustomerID(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
	// A check id carries its customer's canonical id.
	id, err := validation.NewCheckID(validation.CanonicalCustomerID("c-1"))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := validation.CustomerOfCheck(id); !ok || c != "C-1" {
		t.Fatalf("CustomerOfCheck(%q) = %q, %v", id, c, ok)
	}
	if c, ok := validation.CustomerOfCheck(strings.TrimSuffix(id, "C-1") + "c-1"); !ok || c != "C-1" {
		t.Fatalf("CustomerOfCheck of a check id naming c-1 = %q, %v, want C-1", c, ok)
	}
}
