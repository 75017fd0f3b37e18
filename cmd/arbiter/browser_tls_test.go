package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/arbiter-bank/arbiter/internal/testca"
)

// requireChromiumEnv, when set, makes a missing Chromium a failure (.ci/run
// sets it), as in the web package's browser tests.
const requireChromiumEnv = "ARBITER_REQUIRE_CHROMIUM"

func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireChromiumEnv) != "" {
		tb.Fatalf("chromium is not installed and %s is set (apt-get install chromium)", requireChromiumEnv)
	}
	tb.Skipf("chromium is not installed; set %s to make this a failure", requireChromiumEnv)
	return ""
}

// TestTLSBranchCookieInChromium signs a branch agent in through headless
// Chromium over arbiter's own TLS listener and reads the session cookie
// from the browser over CDP: over TLS it is __Host-arbiter_session, Secure,
// HttpOnly and SameSite=Strict. Chromium trusts exactly the listener's key
// (--ignore-certificate-errors-spki-list), nothing else.
func TestTLSBranchCookieInChromium(t *testing.T) {
	bin := chromiumPath(t)
	ca := testca.New(t)
	f := newTLSFiles(t, ca)
	leaf := ca.Server(t, "arbiter-ui", testca.Names{})
	leaf.CopyTo(t, f.certFile, f.keyFile)
	s := startRunWith(t, map[string]string{"ARBITER_TLS_CERT": f.certFile, "ARBITER_TLS_KEY": f.keyFile}, httpsClient(ca, nil), true)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", leaf.SPKIHash()),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // the first run starts the browser: no deadline
		t.Fatalf("start chromium: %v", err)
	}
	step, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(step,
		chromedp.Navigate(s.base+"/branch/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), demoAgentUsername),
		chromedp.SendKeys(chromedp.CSS("#password"), demoAgentPassword+"\r"),
		chromedp.WaitVisible(chromedp.CSS("#customer-id")), // signed in
	); err != nil {
		t.Fatalf("sign in over TLS: %v", err)
	}
	cookies, err := chromedp.Run(step, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{s.base + "/"}})
		return res.Cookies, err
	})
	if err != nil {
		t.Fatalf("Network.getCookies: %v", err)
	}
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "__Host-arbiter_session" {
			session = c
		}
		if c.Name == "arbiter_session" {
			t.Errorf("over TLS the browser holds the plain-HTTP cookie name %q", c.Name)
		}
	}
	if session == nil {
		t.Fatalf("no __Host-arbiter_session cookie in the browser; it has %d cookies", len(cookies))
	}
	if !session.Secure || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/" || !session.Session {
		t.Errorf("session cookie = secure %v, httpOnly %v, sameSite %q, path %q, session %v; want true, true, Strict, /, true",
			session.Secure, session.HTTPOnly, session.SameSite, session.Path, session.Session)
	}
}
