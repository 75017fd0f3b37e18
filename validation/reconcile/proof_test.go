package reconcile_test

import (
	"os"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/validation/reconcile"
)

// TestDocProofExample: docs/reconciliation.md's worked example of the completeness
// proof is what ProofOf computes (customers C-1, C-2, C-3 at limit 2, and
// an empty range), so any system implementing it from the docs agrees with
// arbiter.
func TestDocProofExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/reconciliation.md")
	if err != nil {
		t.Fatal(err)
	}
	hold := func(ids ...string) []reconcile.Holding {
		var hs []reconcile.Holding
		for _, id := range ids {
			hs = append(hs, reconcile.Holding{CustomerID: id})
		}
		return hs
	}
	for _, tc := range []struct {
		page []reconcile.Holding
		want string // as docs/reconciliation.md writes it
	}{
		{hold("C-1", "C-2"), `"proof":{"customers":2,"holdings":2,"digest":"sha256:a8c193a00d70ba23247405cf8f97ca56a45b6eedc605c3b242bab17c5a26d77a"}`},
		{hold("C-3"), `"proof":{"customers":1,"holdings":1,"digest":"sha256:169b7d6f6e56adc23ff45729682329a160dd0153c42b517dd110b70fdb0e6f7c"}`},
		{nil, `an empty range: sha256:e3b0c442`},
	} {
		p := reconcile.ProofOf(tc.page)
		if !strings.Contains(string(doc), tc.want) {
			t.Errorf("docs/reconciliation.md lacks %s", tc.want)
		}
		if !strings.Contains(tc.want, p.Digest[:len("sha256:e3b0c442")]) ||
			(tc.page != nil && !strings.Contains(tc.want, p.Digest)) {
			t.Errorf("ProofOf(%v) = %v, docs/reconciliation.md says %s", tc.page, p, tc.want)
		}
	}
	if got := reconcile.ProofOf(hold("C-1", "C-1", "C-2")); got.Customers != 2 || got.Holdings != 3 ||
		got.Digest != reconcile.ProofOf(hold("C-1", "C-2")).Digest {
		t.Errorf("a customer with two holdings: %v, want 2 customers, 3 holdings, the digest of C-1, C-2", got)
	}
}
