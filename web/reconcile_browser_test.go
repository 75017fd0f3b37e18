package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/reconcile/redisrecon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
	"github.com/arbiter-bank/arbiter/web"
)

// onePageFeed lists holdings of one product, all on one page.
type onePageFeed []reconcile.Holding

func (f onePageFeed) Page(ctx context.Context, after string, limit int) (reconcile.HoldingsPage, error) {
	var out []reconcile.Holding
	for _, h := range f {
		if h.CustomerID > after {
			out = append(out, h)
		}
	}
	return reconcile.HoldingsPage{Holdings: out}, nil
}

// TestBrowserShowsCase: a reconciliation finds a customer holding a card at
// the card service and a loan at the loan service; the branch agent sees
// the case in plain words, in the list and on the customer, and sees that
// the customer may apply for neither product until the case is resolved:
// the dry run and a check both refuse, naming the case.
func TestBrowserShowsCase(t *testing.T) {
	ctx := startBrowser(t)
	opened := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	var rec *reconcile.Reconciler
	rdb := redistest.MustStartRedis(t).Client(t)
	env := startUIOn(t, rdb, false, func(cfg *web.Config) {
		svc := cfg.Service.(*validation.Service)
		store := svc.Store.(*redisstore.Store)
		since := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
		rec = &reconcile.Reconciler{Ledger: store, Store: redisrecon.New(rdb, store), Policy: cfg.Policy, Now: func() time.Time { return opened }, Sources: []reconcile.Source{
			{Product: "credit_card", Name: "card-service", Feed: onePageFeed{{CustomerID: "C-77", Product: "credit_card", IssuedAt: since}}},
			{Product: "personal_loan", Name: "loan-service", Feed: onePageFeed{{CustomerID: "C-77", Product: "personal_loan", IssuedAt: since.AddDate(2, 1, 1)}}},
		}}
		cfg.Reconciler = rec
	})
	run, err := rec.Reconcile(context.Background(), "test")
	if err != nil || run.Counts[reconcile.FindingDoubleHolding] != 1 {
		t.Fatalf("reconcile: %+v, %v", run, err)
	}
	const want = "Customer C-77 holds a Credit card at card-service since 1 Mar 2019 and a Personal loan at loan-service since 2 Apr 2021: contact the customer."

	signInKeyboard(t, ctx, env.URL, uiAgent, uiPassword)
	browse(t, ctx, 10*time.Second, "cases listed", chromedp.WaitVisible(chromedp.CSS(`#cases [data-customer="C-77"]`)))
	if got := pageText(t, ctx, `#cases [data-customer="C-77"] .case-detail`); got != want {
		t.Errorf("case in the list = %q, want %q", got, want)
	}
	if got := pageText(t, ctx, "#cases-h"); got != "Customers to contact" {
		t.Errorf("cases heading = %q", got)
	}
	browse(t, ctx, 10*time.Second, "look the customer up from the case",
		chromedp.Click(chromedp.CSS(`#cases [data-customer="C-77"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#customer-case")),
	)
	if got := pageText(t, ctx, "#customer-case"); got != "Open case: "+want {
		t.Errorf("case on the customer = %q", got)
	}
	if got := pageText(t, ctx, "#timeline"); !strings.Contains(got, "Reconciliation opened a case") {
		t.Errorf("timeline lacks the case:\n%s", got)
	}

	// Opened at 10:00 UTC on 29 Nov 2026: that date in every time zone the
	// browser may have.
	const refused = "a check would be refused. Customer has an open case since 29 Nov 2026 about their Credit card and Personal loan: resolve the case first."
	for _, p := range []string{"Credit card", "Personal loan"} {
		id := map[string]string{"Credit card": "credit_card", "Personal loan": "personal_loan"}[p]
		row := `#eligibility [data-product="` + id + `"]`
		waitPage(t, ctx, 10*time.Second, p+" evaluated", `document.querySelector('`+row+`')?.dataset.reason === 'case_open'`)
		if got, want := pageText(t, ctx, row), p+": "+refused; got != want {
			t.Errorf("eligibility of the %s = %q\nwant %q", p, got, want)
		}
		if got := pageText(t, ctx, row+`[data-reason="case_open"]`); got == "" {
			t.Errorf("eligibility of the %s lacks reason case_open", p)
		}
	}
	browse(t, ctx, 10*time.Second, "request a card check",
		chromedp.Click(chromedp.CSS(`label[for="product-credit_card"]`)),
		chromedp.Click(chromedp.CSS("#check-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#outcome .refusal[data-reason="case_open"]`)),
	)
	if got, want := pageText(t, ctx, "#outcome .refusal h3"), "No Credit card check: refused"; got != want {
		t.Errorf("heading = %q, want %q", got, want)
	}
	if got, want := pageText(t, ctx, "#outcome .refusal .detail"), strings.TrimPrefix(refused, "a check would be refused. "); got != want {
		t.Errorf("refusal = %q, want %q", got, want)
	}
	waitPage(t, ctx, 10*time.Second, "the refusal in the timeline",
		`document.getElementById('timeline').textContent.includes('requested a Credit card check: refused, the customer has an open case to resolve first')`)
	saveScreenshot(t, ctx, "desktop-case")
}
