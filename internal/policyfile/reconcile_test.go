package policyfile_test

import (
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
)

const reconcileProducts = `products:
  credit_card:   { redeemers: [card-service] }
  personal_loan: { redeemers: [loan-service] }
exclusive:
  - [credit_card, personal_loan]
`

func TestParseReconcile(t *testing.T) {
	p, err := policyfile.Parse([]byte(reconcileProducts + `reconcile:
  interval: 10m
  grace: 0
  on_orphan: release
  sources:
    - { product: credit_card,   url: http://card.internal/v1/holdings, key_file: /etc/arbiter/card-feed.key }
    - { product: personal_loan, url: http://loan.internal/v1/holdings, name: loan-service }
`))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Reconcile.WithDefaults()
	if r.Interval != 10*time.Minute || r.Grace != validation.DefaultReconcileGrace || r.OnOrphan != "release" ||
		r.PageSize != validation.DefaultReconcilePageSize || *r.MinShare != validation.DefaultReconcileMinShare {
		t.Errorf("config with defaults = %+v", r)
	}
	if got, want := r.Sources[0].Name, "card.internal"; got != want {
		t.Errorf("default source name = %q, want the URL's host %q", got, want)
	}
	if got, want := r.Sources[1].Name, "loan-service"; got != want {
		t.Errorf("source name = %q, want %q", got, want)
	}
	if p, err := policyfile.Parse([]byte(reconcileProducts + "reconcile:\n  interval: 0\n")); err != nil || p.Reconcile.Interval != 0 {
		t.Errorf("interval: 0 = %v, %v; want on demand only", p, err)
	}
	if got := validation.DefaultPolicy().Reconcile; got != nil {
		t.Errorf("the default policy reconciles: %+v", got)
	}
}

func TestParseReconcileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, block, want string
	}{
		{"unknown key", "reconcile:\n  intervall: 10m\n", "line 7: reconcile: field intervall not found"},
		{"unknown source key", "reconcile:\n  sources:\n    - { product: credit_card, url: http://x/h, key: secret }\n", "line 8: reconcile source: field key not found"},
		{"unknown product", "reconcile:\n  sources:\n    - { product: mortgage, url: http://x/h }\n", `line 8: reconcile source: unknown product "mortgage"`},
		{"product twice", "reconcile:\n  sources:\n    - { product: credit_card, url: http://x/h }\n    - { product: credit_card, url: http://y/h }\n", "has two feeds"},
		{"not http", "reconcile:\n  sources:\n    - { product: credit_card, url: ftp://x/h }\n", "must be an http(s) URL"},
		{"on_orphan", "reconcile:\n  on_orphan: delete\n", "must be release or report"},
		{"negative grace", "reconcile:\n  grace: -1m\n", "must not be negative"},
		{"interval too short", "reconcile:\n  interval: 5s\n", "under a minute"},
		{"min_share", "reconcile:\n  min_share: 2\n", "within 0..1"},
		{"page_size over the feed's maximum", "reconcile:\n  page_size: 1001\n", "page_size 1001 must be 1..1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policyfile.Parse([]byte(reconcileProducts + tc.block))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
