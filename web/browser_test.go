package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// RequireChromiumEnv names the environment variable that, when non-empty,
// makes the browser tests fail instead of skip when Chromium is missing
// (.ci/run sets it).
const RequireChromiumEnv = "ARBITER_REQUIRE_CHROMIUM"

// screenshotDir is where the browser tests leave screenshots (git-ignored).
var screenshotDir = filepath.Join("..", "artifacts", "screenshots")

// Viewports the UI must lay out well at.
const (
	desktopW, desktopH = 1280, 800
	phoneW, phoneH     = 390, 844
)

func findChromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(RequireChromiumEnv) != "" {
		tb.Fatalf("chromium is not installed and %s is set (apt-get install chromium)", RequireChromiumEnv)
	}
	tb.Skipf("chromium is not installed; set %s to make this a failure", RequireChromiumEnv)
	return ""
}

// startBrowser starts headless Chromium for the test and returns a tab's
// context. The browser is stopped when the test ends.
func startBrowser(tb testing.TB) context.Context {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(tb)),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("lang", "en-GB"),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(desktopW, desktopH),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(tb.Logf))
	tb.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(desktopW, desktopH)); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser steps with a deadline, failing the test with what.
func browse(tb testing.TB, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

func pageText(tb testing.TB, ctx context.Context, sel string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// One evaluation finds the element and reads it: a query, then a read
	// of the node it found, fails when the page re-renders in between.
	q, _ := json.Marshal(sel)
	s, err := chromedp.Run(ctx, chromedp.Evaluate[*string](`(() => { const n = document.querySelector(`+string(q)+`); return n ? n.innerText : null })()`))
	if err != nil {
		tb.Fatalf("text of %s: %v", sel, err)
	}
	if s == nil {
		tb.Fatalf("text of %s: no such element", sel)
	}
	return strings.TrimSpace(*s)
}

// waitFor polls a JavaScript predicate until it is true.
func waitPage(tb testing.TB, ctx context.Context, d time.Duration, what, predicate string) {
	tb.Helper()
	browse(tb, ctx, d+time.Second, what, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d))(ctx, t)
		return chromedp.Void{}, err
	})
}

// screenshot saves the whole page as artifacts/screenshots/name.png.
func saveScreenshot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		tb.Fatal(err)
	}
}

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

// readOTP returns the code the page shows, checking it is shown as 3+3.
func pageOTP(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	waitPage(tb, ctx, 10*time.Second, "OTP shown", `/^[0-9]{6}$/.test(document.getElementById('otp-code')?.dataset.code || '')`)
	groups := pageText(tb, ctx, "#otp-code .otp-group:first-child") + "|" + pageText(tb, ctx, "#otp-code .otp-group:last-child")
	first, second, _ := strings.Cut(groups, "|")
	code := first + second
	if len(first) != 3 || len(second) != 3 || !sixDigits.MatchString(code) {
		tb.Fatalf("OTP shown as %q + %q, want two groups of three digits", first, second)
	}
	return code
}

func signInKeyboard(tb testing.TB, ctx context.Context, url, user, password string) {
	tb.Helper()
	// Keyboard only: the page focuses the username field on load.
	browse(tb, ctx, 20*time.Second, "open sign-in page",
		chromedp.Navigate(url+"/branch/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
	waitPage(tb, ctx, 5*time.Second, "username focused", `document.activeElement && document.activeElement.id === 'username'`)
	browse(tb, ctx, 10*time.Second, "type credentials",
		chromedp.KeyEvent(user),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(password),
		chromedp.KeyEvent(kb.Enter),
	)
}

func TestBrowserBranchFlow(t *testing.T) {
	ctx := startBrowser(t)
	env := startUI(t, false, nil)
	api := env.client(t)
	const customer = "C-4242"

	signInKeyboard(t, ctx, env.URL, uiAgent, uiPassword)
	browse(t, ctx, 10*time.Second, "signed in", chromedp.WaitVisible(chromedp.CSS("#customer-id")))
	if got := pageText(t, ctx, "#who-name"); !strings.Contains(got, uiAgent) || !strings.Contains(got, uiBranch) {
		t.Errorf("header says %q, want the agent and branch", got)
	}

	t.Run("looks up a customer", func(t *testing.T) {
		waitPage(t, ctx, 5*time.Second, "customer id focused", `document.activeElement.id === 'customer-id'`)
		// Focus is visible on buttons reached with the keyboard.
		browse(t, ctx, 10*time.Second, "tab to the button", chromedp.KeyEvent(kb.Tab))
		ring, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(() => { const s = getComputedStyle(document.activeElement); return document.activeElement.textContent + '|' + s.outlineStyle + ' ' + s.outlineWidth })()`))
		if err != nil {
			t.Fatal(err)
		}
		if want := "Look up|solid 3px"; ring != want {
			t.Errorf("focused button and its outline = %q, want %q", ring, want)
		}
		browse(t, ctx, 10*time.Second, "look up",
			chromedp.Focus(chromedp.CSS("#customer-id")),
			chromedp.KeyEvent(customer),
			chromedp.KeyEvent(kb.Enter),
			chromedp.WaitVisible(chromedp.CSS("#customer-view")),
		)
		if got, want := pageText(t, ctx, "#customer-name"), customer; got != want {
			t.Errorf("customer shown = %q, want %q", got, want)
		}
		if got, want := pageText(t, ctx, "#products"), "No products yet."; got != want {
			t.Errorf("products = %q, want %q", got, want)
		}
	})

	var otp string
	t.Run("requests a credit card check and shows the OTP", func(t *testing.T) {
		browse(t, ctx, 10*time.Second, "request check",
			chromedp.Click(chromedp.CSS(`label[for="product-credit_card"]`)),
			chromedp.Click(chromedp.CSS("#check-submit")),
		)
		otp = pageOTP(t, ctx)
		if got := pageText(t, ctx, "#otp-panel .hold-left"); !strings.HasPrefix(got, "Hold ends in 4:") && !strings.HasPrefix(got, "Hold ends in 5:") {
			t.Errorf("hold countdown = %q, want about 5 minutes", got)
		}
		if got := pageText(t, ctx, "#otp-panel .otp-next"); !regexp.MustCompile(`^New code in [0-9]+ s$`).MatchString(got) {
			t.Errorf("code countdown = %q", got)
		}
		waitPage(t, ctx, 5*time.Second, "hold listed on the customer", `!!document.querySelector('#hold .hold-box')`)
		saveScreenshot(t, ctx, "desktop-otp")
	})

	t.Run("the page says redeemed within two seconds", func(t *testing.T) {
		r := api.do(t, http.MethodPost, "/v1/redemptions",
			map[string]string{"customer_id": customer, "product": "credit_card", "otp": otp}, "Authorization", "Bearer "+uiCardKey)
		if got, want := r.Status, http.StatusCreated; got != want {
			t.Fatalf("redeem as card-service: status = %d, want %d (%s)", got, want, r.Raw)
		}
		start := time.Now()
		waitPage(t, ctx, 2*time.Second, "redeemed shown", `document.querySelector('#check-status')?.dataset.status === 'redeemed'`)
		t.Logf("redemption shown %v after the API answered", time.Since(start).Round(time.Millisecond))
		if got := pageText(t, ctx, "#check-status .status-line"); !strings.HasPrefix(got, "Redeemed by card-service") {
			t.Errorf("status = %q", got)
		}
		waitPage(t, ctx, 5*time.Second, "card listed", `!!document.querySelector('#products [data-product="credit_card"]')`)
		if got := pageText(t, ctx, `#products [data-product="credit_card"]`); !strings.Contains(got, "Credit card") || !strings.Contains(got, "card-service") {
			t.Errorf("product line = %q", got)
		}
		if got, want := pageText(t, ctx, "#hold"), "None."; got != want {
			t.Errorf("hold after redemption = %q, want %q", got, want)
		}
		if got := pageText(t, ctx, "#timeline"); !strings.Contains(got, uiAgent+" (branch-ui) requested a Credit card check") ||
			!strings.Contains(got, "card-service redeemed the Credit card check") {
			t.Errorf("timeline lacks the check and the redemption:\n%s", got)
		}
		// The dry run already explains, before any check, what a loan check would decide.
		waitPage(t, ctx, 5*time.Second, "eligibility shown", `document.querySelector('#eligibility [data-product="personal_loan"]')?.textContent.includes('which excludes this product')`)
		if got := pageText(t, ctx, `#eligibility [data-product="personal_loan"]`); !strings.Contains(got, "a check would be refused") || !strings.Contains(got, "which excludes this product") {
			t.Errorf("loan eligibility = %q", got)
		}
		saveScreenshot(t, ctx, "desktop-redeemed")
	})

	t.Run("a loan check is refused in plain words", func(t *testing.T) {
		browse(t, ctx, 10*time.Second, "request loan check",
			chromedp.Click(chromedp.CSS(`label[for="product-personal_loan"]`)),
			chromedp.Click(chromedp.CSS("#check-submit")),
			chromedp.WaitVisible(chromedp.CSS("#outcome .refusal")),
		)
		got := pageText(t, ctx, "#outcome .refusal .detail")
		if want := "Customer already holds a Credit card since"; !strings.HasPrefix(got, want) {
			t.Errorf("refusal = %q, want it to start %q", got, want)
		}
		if !strings.Contains(got, "which excludes this product") {
			t.Errorf("refusal = %q does not say why", got)
		}
		if got, want := pageText(t, ctx, "#outcome .refusal h3"), "No Personal loan check: refused"; got != want {
			t.Errorf("heading = %q, want %q", got, want)
		}
		saveScreenshot(t, ctx, "desktop-refused")
	})

	t.Run("phone width: another service's hold is explained and can be cancelled", func(t *testing.T) {
		if r := api.do(t, http.MethodPost, "/v1/checks", map[string]string{"customer_id": "C-4243", "product": "credit_card"},
			"Authorization", "Bearer "+uiCardKey); r.Status != http.StatusCreated {
			t.Fatalf("check as card-service: status %d (%s)", r.Status, r.Raw)
		}
		browse(t, ctx, 10*time.Second, "phone viewport", chromedp.EmulateViewport(phoneW, phoneH, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		browse(t, ctx, 10*time.Second, "second customer",
			chromedp.Evaluate[chromedp.Void](`document.getElementById('customer-id').value = ''`),
			chromedp.SendKeys(chromedp.CSS("#customer-id"), "C-4243"+kb.Enter),
		)
		waitPage(t, ctx, 10*time.Second, "second customer shown", `document.getElementById('customer-name').textContent === 'C-4243'`)
		if got := pageText(t, ctx, "#hold"); !strings.Contains(got, "placed by card-service") || !strings.Contains(got, "left") {
			t.Errorf("hold panel = %q, want card-service's hold and its time left", got)
		}
		browse(t, ctx, 10*time.Second, "request check",
			chromedp.Click(chromedp.CSS(`label[for="product-credit_card"]`)),
			chromedp.Click(chromedp.CSS("#check-submit")),
			chromedp.WaitVisible(chromedp.CSS("#outcome .refusal")),
		)
		got := pageText(t, ctx, "#outcome .refusal .detail")
		if !strings.HasPrefix(got, "Another check for a Credit card is in progress until ") || !strings.HasSuffix(got, "placed by card-service.") {
			t.Errorf("refusal = %q", got)
		}
		saveScreenshot(t, ctx, "phone-refused-hold")
		browse(t, ctx, 10*time.Second, "cancel card-service's hold",
			chromedp.Click(chromedp.CSS("#hold .danger-outline")),
			chromedp.WaitVisible(chromedp.CSS(".confirm .confirm-yes")),
			chromedp.Click(chromedp.CSS(".confirm .confirm-yes")),
		)
		waitPage(t, ctx, 5*time.Second, "hold gone", `document.getElementById('hold').textContent === 'None.'`)
	})

	t.Run("phone width: request, then cancel after confirming", func(t *testing.T) {
		browse(t, ctx, 10*time.Second, "request check",
			chromedp.Click(chromedp.CSS(`label[for="product-credit_card"]`)),
			chromedp.Click(chromedp.CSS("#check-submit")),
		)
		pageOTP(t, ctx)
		wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.documentElement.scrollWidth > %d`, phoneW)))
		if err != nil {
			t.Fatal(err)
		}
		if wide {
			t.Error("the page scrolls sideways at phone width")
		}
		saveScreenshot(t, ctx, "phone-otp")

		browse(t, ctx, 10*time.Second, "ask to cancel",
			chromedp.Click(chromedp.CSS("#otp-panel .cancel")),
			chromedp.WaitVisible(chromedp.CSS(".confirm .confirm-yes")),
		)
		waitPage(t, ctx, 5*time.Second, "safe choice focused", `document.activeElement.classList.contains('keep')`)
		if got := pageText(t, ctx, ".confirm .confirm-text"); !strings.HasPrefix(got, "Cancel the Credit card hold placed by "+uiAgent) {
			t.Errorf("confirmation = %q", got)
		}
		saveScreenshot(t, ctx, "phone-confirm-cancel")
		browse(t, ctx, 10*time.Second, "confirm", chromedp.Click(chromedp.CSS(".confirm .confirm-yes")))
		waitPage(t, ctx, 2*time.Second, "cancelled shown", `document.querySelector('#check-status')?.dataset.status === 'cancelled'`)
		r := api.do(t, http.MethodGet, "/v1/customers/C-4243", nil, "Authorization", "Bearer "+uiCardKey)
		if r.Body["hold"] != nil {
			t.Errorf("hold still live after cancelling: %s", r.Raw)
		}
		saveScreenshot(t, ctx, "phone-cancelled")
	})

	t.Run("signs out", func(t *testing.T) {
		browse(t, ctx, 10*time.Second, "desktop viewport", chromedp.EmulateViewport(desktopW, desktopH))
		browse(t, ctx, 10*time.Second, "sign out",
			chromedp.Click(chromedp.CSS("#sign-out")),
			chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		)
		if got, want := pageText(t, ctx, "#signin-note"), "You are signed out."; got != want {
			t.Errorf("note = %q, want %q", got, want)
		}
		// Reloading does not bring the session back.
		browse(t, ctx, 10*time.Second, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#username")))
		saveScreenshot(t, ctx, "desktop-signin")
	})
}

func TestBrowserSignInThrottle(t *testing.T) {
	ctx := startBrowser(t)
	env := startUI(t, false, nil)

	browse(t, ctx, 20*time.Second, "open page", chromedp.Navigate(env.URL+"/branch/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	attempt := func(password string) string {
		t.Helper()
		browse(t, ctx, 10*time.Second, "type credentials",
			chromedp.Evaluate[chromedp.Void](`document.getElementById('signin-error').textContent = ''`),
			chromedp.SetValue(chromedp.CSS("#username"), uiAgent),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS("#signin-submit")),
		)
		waitPage(t, ctx, 10*time.Second, "an answer", `document.getElementById('signin-error').textContent !== '' || !document.getElementById('work-view').hidden`)
		user, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#username")))
		if err != nil || user != uiAgent {
			t.Fatalf("username field = %q (%v), want %q", user, err, uiAgent)
		}
		return pageText(t, ctx, "#signin-error")
	}
	for i := range 4 {
		if got, want := attempt(fmt.Sprintf("guess-%d", i)), "Wrong username or password."; got != want {
			t.Fatalf("attempt %d: error = %q, want %q", i+1, got, want)
		}
	}
	if got := attempt("guess-5"); !strings.HasPrefix(got, "Too many failed sign-ins. Try again in 10 minutes") {
		t.Fatalf("fifth wrong password: error = %q, want the throttle", got)
	}
	if got := attempt(uiPassword); !strings.HasPrefix(got, "Too many failed sign-ins") {
		t.Fatalf("right password while throttled: error = %q, want the throttle", got)
	}
	if hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('work-view').hidden`)); err != nil || !hidden {
		t.Fatalf("signed in while throttled (hidden=%v, err=%v)", hidden, err)
	}
	saveScreenshot(t, ctx, "desktop-throttled")
}
