package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// lookUpCustomer shows a customer on the signed-in page.
func lookUpCustomer(tb testing.TB, ctx context.Context, id string) {
	tb.Helper()
	browse(tb, ctx, 10*time.Second, "look up "+id,
		chromedp.WaitVisible(chromedp.CSS("#customer-id")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('customer-id').value = ''`),
		chromedp.SendKeys(chromedp.CSS("#customer-id"), id+kb.Enter),
	)
	waitPage(tb, ctx, 10*time.Second, id+" shown", `document.getElementById('customer-name').textContent === '`+id+`' && !document.getElementById('customer-view').hidden`)
}

// TestBrowserEmptyActivitySpansCard: a customer with no history gets the
// activity card's placeholder across the card, on one line, not squeezed
// into the timeline's time column.
func TestBrowserEmptyActivitySpansCard(t *testing.T) {
	ctx := startBrowser(t)
	env := startUI(t, false, nil)
	signInKeyboard(t, ctx, env.URL, uiAgent, uiPassword)
	lookUpCustomer(t, ctx, "C-5201")
	waitPage(t, ctx, 10*time.Second, "empty activity shown", `!!document.querySelector('.area-timeline .empty')`)

	type box struct {
		Card, Box, Text float64
		Lines           int
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[box](`(() => {
		const card = document.querySelector('.area-timeline');
		const empty = card.querySelector('.empty');
		const text = document.createRange();
		text.selectNodeContents(empty);
		const tops = new Set([...text.getClientRects()].map((r) => Math.round(r.top)));
		return { Card: card.getBoundingClientRect().width, Box: empty.getBoundingClientRect().width,
			Text: text.getBoundingClientRect().width, Lines: tops.size };
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, ctx, "desktop-empty-activity")
	if got.Box < 0.8*got.Card {
		t.Errorf("placeholder is %.0fpx wide in a %.0fpx card, want at least 80%%", got.Box, got.Card)
	}
	if got.Lines != 1 {
		t.Errorf("placeholder text takes %d lines (%.0fpx wide) in a %.0fpx card, want one line", got.Lines, got.Text, got.Card)
	}
}
