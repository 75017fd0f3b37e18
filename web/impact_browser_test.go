package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPolicyImpact: an admin opens the policy page, pastes a
// candidate with a family limit and a cooling-off period and their key,
// and reads what it would do: the numbers, the refusals by rule and the
// customer in violation in words; a wrong key reads as the refusal.
func TestBrowserPolicyImpact(t *testing.T) {
	ctx := startBrowser(t)
	a := newAPI(t, withPolicy(impactLivePolicy))
	impactLedger(t, a)

	try := func(key string) {
		t.Helper()
		browse(t, ctx, 10*time.Second, "open the page and try the candidate",
			chromedp.Navigate(a.url+"/branch/impact.html"),
			chromedp.WaitVisible(chromedp.CSS("#impact-form")),
			chromedp.SetValue(chromedp.CSS("#policy"), impactCandidate),
			chromedp.SendKeys(chromedp.CSS("#key"), key),
			chromedp.SetValue(chromedp.CSS("#examples"), "5"),
			chromedp.Click(chromedp.CSS("#try")),
		)
	}

	try(checkerKey)
	waitPage(t, ctx, 10*time.Second, "refused", `document.querySelector('#impact-result').dataset.state === 'error'`)
	if got := pageText(t, ctx, "#impact-error"); !strings.HasPrefix(got, "Not allowed for this client:") {
		t.Errorf("error as a checker = %q, want the forbidden problem's title and detail", got)
	}

	try(adminKey)
	waitPage(t, ctx, 10*time.Second, "report shown", `document.querySelector('#impact-result').dataset.state === 'done'`)
	for sel, want := range map[string]string{
		"#r-version":      "2027-01",
		"#r-scanned":      "4",
		"#r-in-violation": "2",
		"#r-total":        "7",
		"#r-refused":      "2 (28.6 %)",
	} {
		if got := pageText(t, ctx, sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	if got := pageText(t, ctx, "#r-by-reason"); !strings.Contains(got, "1 by a family limit") || !strings.Contains(got, "1 by a cooling-off period") {
		t.Errorf("by rule = %q", got)
	}
	got := pageText(t, ctx, `#r-examples [data-customer="IMP-A"]`)
	if !strings.HasPrefix(got, "IMP-A: Customer holds 2 of 2 unsecured credit products: Credit card since ") || !strings.HasSuffix(got, "(rule unsecured_credit).") {
		t.Errorf("example = %q", got)
	}
	if got := pageText(t, ctx, "#r-examples"); !strings.Contains(got, "IMP-D:") {
		t.Errorf("examples = %q, want IMP-D too", got)
	}
}
