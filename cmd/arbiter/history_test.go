package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The fault tests record every operation's call and return times and its
// outcome, and Porcupine checks the history of each customer against
// customerModel: one customer, the two exclusive products of the default
// policy (credit_card, personal_loan).

// opInput is one operation: a check or a redemption of a product (by check
// id), or the release of a granted product.
type opInput struct {
	Kind    string // "check", "redeem", "release"
	Product string
	CheckID string // redeem: the check redeemed
}

// opOutput is what the client saw. Result is one of
//
//	check:   held (CheckID set), refused
//	redeem:  granted, replay, conflict (409 conflicting/already_holds: hold cancelled), expired (410)
//	release: ok, not_found
//	any:     unknown (5xx, not_durable, timeout, transport error: it may or may not have happened)
type opOutput struct {
	Result  string
	CheckID string
	Bounded bool // an unknown outcome that was settled by the time it returned
}

// customerState is the model's state: comparable, so Porcupine's default
// equality works. Hold is the live hold's check id ("" none, "?" a hold of
// an unknown id, from a check whose answer was lost).
type customerState struct {
	Hold, HoldProduct string
	Card, Loan        string // check id of each granted product, "" when not held
	Redeemed          string // check ids ever redeemed, sorted, comma-separated
}

func (s customerState) grant(p string) string {
	if p == "credit_card" {
		return s.Card
	}
	return s.Loan
}

func (s customerState) withGrant(p, id string) customerState {
	if p == "credit_card" {
		s.Card = id
	} else {
		s.Loan = id
	}
	return s
}

// blocked reports whether the policy refuses product p: the customer
// holds it or the other product of the exclusive pair.
func (s customerState) blocked(p string) bool { return s.Card != "" || s.Loan != "" }

func (s customerState) redeemed(id string) bool {
	return slices.Contains(strings.Split(s.Redeemed, ","), id)
}

func (s customerState) addRedeemed(id string) customerState {
	ids := append(strings.Split(s.Redeemed, ","), id)
	ids = slices.DeleteFunc(ids, func(x string) bool { return x == "" })
	slices.Sort(ids)
	s.Redeemed = strings.Join(slices.Compact(ids), ",")
	return s
}

// customerStep is the specification. A hold may vanish before any step: it
// expires (the test policy's holds are short) or, not being WAITed for, is
// lost in a failover; that is allowed. Grants may not vanish: a history
// where an acknowledged grant is forgotten is rejected.
func customerStep(state, input, output any) []any {
	in, out := input.(opInput), output.(opOutput)
	start := []customerState{state.(customerState)}
	if s := start[0]; s.Hold != "" {
		s.Hold, s.HoldProduct = "", ""
		start = append(start, s)
	}
	var next []any
	for _, s := range start {
		for _, n := range apply(s, in, out) {
			next = append(next, n)
		}
	}
	return next
}

func apply(s customerState, in opInput, out opOutput) []customerState {
	var next []customerState
	held := func() (customerState, bool) {
		if s.Hold != "" || s.blocked(in.Product) {
			return s, false
		}
		n := s
		n.Hold, n.HoldProduct = out.CheckID, in.Product
		if out.CheckID == "" {
			n.Hold = "?"
		}
		return n, true
	}
	granted := func() (customerState, bool) {
		if s.Hold != in.CheckID || s.blocked(in.Product) {
			return s, false
		}
		n := s.withGrant(in.Product, in.CheckID).addRedeemed(in.CheckID)
		n.Hold, n.HoldProduct = "", ""
		return n, true
	}
	conflict := func() (customerState, bool) {
		if s.Hold != in.CheckID || !s.blocked(in.Product) {
			return s, false
		}
		n := s
		n.Hold, n.HoldProduct = "", ""
		return n, true
	}
	released := func() (customerState, bool) {
		if s.grant(in.Product) == "" {
			return s, false
		}
		return s.withGrant(in.Product, ""), true
	}
	add := func(n customerState, ok bool) {
		if ok {
			next = append(next, n)
		}
	}
	switch in.Kind + "/" + out.Result {
	case "check/held":
		add(held())
	case "check/refused":
		add(s, s.Hold != "" || s.blocked(in.Product))
	case "check/unknown":
		add(s, true)
		add(held())
	case "redeem/granted":
		add(granted())
	case "redeem/replay":
		add(s, s.redeemed(in.CheckID))
	case "redeem/conflict":
		add(conflict())
	case "redeem/expired":
		add(s, s.Hold != in.CheckID && !s.redeemed(in.CheckID))
	case "redeem/unknown":
		add(s, true)
		add(granted())
		add(conflict())
	case "release/ok":
		add(released())
	case "release/not_found":
		add(s, s.grant(in.Product) == "")
	case "release/unknown":
		add(s, true)
		add(released())
	}
	return next
}

// customerModel partitions the history by customer (Metadata holds the
// customer id) and checks each with customerStep.
var customerModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			c := op.Metadata.(string)
			if _, ok := by[c]; !ok {
				order = append(order, c)
			}
			by[c] = append(by[c], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, c := range order {
			out = append(out, by[c])
		}
		return out
	},
	Init: func() []any { return []any{customerState{}} },
	Step: customerStep,
	DescribeOperation: func(input, output any) string {
		in, out := input.(opInput), output.(opOutput)
		return fmt.Sprintf("%s %s %s → %s %s", in.Kind, in.Product, in.CheckID, out.Result, out.CheckID)
	},
	DescribeState: func(state any) string {
		s := state.(customerState)
		return fmt.Sprintf("hold=%s(%s) card=%s loan=%s", s.Hold, s.HoldProduct, s.Card, s.Loan)
	},
	DescribeOperationMetadata: func(info any) string { return info.(string) },
}

// history collects operations from many goroutines.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func newHistory() *history { return &history{start: time.Now()} }

// record adds one operation; call is when it was sent.
func (h *history) record(client int, customer string, in opInput, out opOutput, call time.Time) {
	ret := time.Since(h.start).Nanoseconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{
		ClientId: client, Input: in, Output: out, Metadata: customer,
		Call: call.Sub(h.start).Nanoseconds(), Return: ret,
	})
}

// check runs Porcupine on the history. An operation whose outcome is
// unknown may take effect at any time after its call, so its return is
// moved to the end of the history. On a failure the visualisation is
// written under artifacts/ and its path returned.
func (h *history) check(tb testing.TB, name string) (porcupine.CheckResult, string) {
	tb.Helper()
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	h.mu.Unlock()
	end := time.Since(h.start).Nanoseconds() + 1
	for i := range ops {
		if out := ops[i].Output.(opOutput); out.Result == "unknown" && !out.Bounded {
			ops[i].Return = end
		}
	}
	model := customerModel.ToModel()
	// The checker's budget, not a timing assertion: a history with many
	// unbounded unknowns (redemptions answered not_durable while the
	// master has no replica) takes the search minutes on two loaded
	// cores; Unknown is a failure, so give it room.
	res, info := porcupine.CheckOperationsVerbose(model, ops, 3*time.Minute)
	if res == porcupine.Ok {
		return res, ""
	}
	dir := filepath.Join("..", "..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Errorf("artifacts: %v", err)
		return res, ""
	}
	path := filepath.Join(dir, "porcupine-"+name+".html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		tb.Errorf("visualize: %v", err)
	}
	return res, path
}

// TestCustomerModel: the model accepts a legal history and rejects a
// double grant and a forgotten grant, so a passing fault test means
// something.
func TestCustomerModel(t *testing.T) {
	op := func(c int, call, ret int64, in opInput, out opOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Call: call, Return: ret, Input: in, Output: out, Metadata: "C"}
	}
	check := func(p string) opInput { return opInput{Kind: "check", Product: p} }
	redeem := func(p, id string) opInput { return opInput{Kind: "redeem", Product: p, CheckID: id} }
	model := customerModel.ToModel()
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"check, redeem, refused", []porcupine.Operation{
			op(0, 0, 1, check("credit_card"), opOutput{Result: "held", CheckID: "a"}),
			op(0, 2, 3, redeem("credit_card", "a"), opOutput{Result: "granted"}),
			op(1, 4, 5, check("personal_loan"), opOutput{Result: "refused"}),
		}, true},
		{"lost hold then expired redeem", []porcupine.Operation{
			op(0, 0, 1, check("credit_card"), opOutput{Result: "held", CheckID: "a"}),
			op(0, 2, 3, redeem("credit_card", "a"), opOutput{Result: "expired"}),
			op(1, 4, 5, check("personal_loan"), opOutput{Result: "held", CheckID: "b"}),
		}, true},
		{"double grant", []porcupine.Operation{
			op(0, 0, 1, check("credit_card"), opOutput{Result: "held", CheckID: "a"}),
			op(0, 2, 3, redeem("credit_card", "a"), opOutput{Result: "granted"}),
			op(1, 4, 5, check("personal_loan"), opOutput{Result: "held", CheckID: "b"}),
			op(1, 6, 7, redeem("personal_loan", "b"), opOutput{Result: "granted"}),
		}, false},
		{"forgotten grant", []porcupine.Operation{
			op(0, 0, 1, check("credit_card"), opOutput{Result: "held", CheckID: "a"}),
			op(0, 2, 3, redeem("credit_card", "a"), opOutput{Result: "granted"}),
			op(0, 4, 5, opInput{Kind: "release", Product: "credit_card"}, opOutput{Result: "not_found"}),
		}, false},
		{"unknown redeem may have granted", []porcupine.Operation{
			op(0, 0, 1, check("credit_card"), opOutput{Result: "held", CheckID: "a"}),
			op(0, 2, 100, redeem("credit_card", "a"), opOutput{Result: "unknown"}),
			op(1, 4, 5, check("personal_loan"), opOutput{Result: "refused"}),
			op(0, 6, 7, redeem("credit_card", "a"), opOutput{Result: "replay"}),
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(model, tt.ops); got != tt.want {
				t.Fatalf("linearizable = %v, want %v", got, tt.want)
			}
		})
	}
}
