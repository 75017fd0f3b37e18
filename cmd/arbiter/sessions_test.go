package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/web"
)

// asMainEnv makes the test binary run arbiter's main instead of the tests,
// so that the instances of TestSessionsAcrossInstances are real processes
// running exactly what the arbiter binary runs (the race detector included),
// without a go build.
const asMainEnv = "ARBITER_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// instance is one arbiter process.
type instance struct {
	base   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{} // closed once the process has exited; then err is set
	err    error
}

// startInstance runs arbiter as a child process with the environment env,
// waits for /readyz and stops it when the test ends.
func startInstance(tb testing.TB, env map[string]string) *instance {
	tb.Helper()
	return startInstanceCmd(tb, env, exec.Command(os.Args[0], "-addr", "127.0.0.1:0", "-log-level", "warn"))
}

// startInstanceCmd is startInstance running cmd, which runs this test
// binary (through a shell, say).
func startInstanceCmd(tb testing.TB, env map[string]string, cmd *exec.Cmd) *instance {
	tb.Helper()
	for _, kv := range os.Environ() { // the child reads only what the test gives it
		if !strings.HasPrefix(kv, "ARBITER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, asMainEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &instance{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start arbiter: %v", err)
	}
	first := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(out)
		if lines.Scan() {
			first <- lines.Text()
		}
		close(first)
		_, _ = io.Copy(io.Discard, out) // never let arbiter block on stdout
	}()
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() { p.stop(tb) })

	select {
	case line := <-first:
		base, ok := strings.CutPrefix(line, "arbiter listening on ")
		if !ok {
			tb.Fatalf("arbiter's first line = %q; stderr: %s", line, p.stderr)
		}
		p.base = strings.TrimSpace(base)
	case <-time.After(20 * time.Second):
		tb.Fatalf("arbiter printed no address in 20s; stderr: %s", p.stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("arbiter not ready in 10s: %v; stderr: %s", err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling a process's readiness
	}
}

// stop sends SIGTERM, as a deploy does, and fails the test unless arbiter
// shuts down cleanly (a data race reported by the child fails it too).
func (p *instance) stop(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		tb.Errorf("arbiter did not stop within 15s of SIGTERM; stderr: %s", p.stderr)
		return
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		tb.Errorf("arbiter exited with %v; stderr: %s", p.err, p.stderr)
	}
}

// Branch agents of the two-instance test.
const (
	sessAgent, sessPassword = "ana", "correct horse battery"
	sessOther, sessOtherPw  = "bruno", "staple battery horse"
)

// sessionsEnv is a production configuration on a fresh real redis-server,
// with branch agents (bcrypt at its lowest cost, to keep the test quick).
func sessionsEnv(tb testing.TB) map[string]string {
	tb.Helper()
	env := productionEnv(tb)
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		return string(h)
	}
	env["ARBITER_CLIENTS"] = writeFile(tb, "clients.yaml", `clients:
  - { id: branch-portal, key: prod-checker-key-123, roles: [checker] }
  - { id: card-service, key: prod-card-key-123456, roles: [checker, redeemer] }
agents:
  - { username: `+sessAgent+`, password_bcrypt: "`+hash(sessPassword)+`", branch: Lisbon-01 }
  - { username: `+sessOther+`, password_bcrypt: "`+hash(sessOtherPw)+`", branch: Porto-02 }
`)
	return env
}

// browser is a branch agent's browser: its session cookie and CSRF token,
// which it sends to whichever instance it is given.
type browser struct {
	cookie *http.Cookie
	csrf   string
}

// do sends a request as the page does: the cookie, and on state changes
// the CSRF token and a same-origin Sec-Fetch-Site.
func (br *browser) do(tb testing.TB, base, method, path string, body any) (int, map[string]any) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if br.cookie != nil {
		req.AddCookie(br.cookie)
	}
	if method != http.MethodGet && br.csrf != "" {
		req.Header.Set(web.CSRFHeader, br.csrf)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if raw, _ := io.ReadAll(resp.Body); len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			tb.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "arbiter_session" && ck.MaxAge >= 0 {
			br.cookie = ck
		}
	}
	if csrf, ok := out["csrf_token"].(string); ok {
		br.csrf = csrf
	}
	return resp.StatusCode, out
}

// signIn posts the credentials to base and returns the status.
func (br *browser) signIn(tb testing.TB, base, user, password string) int {
	tb.Helper()
	status, _ := br.do(tb, base, http.MethodPost, "/branch/session", map[string]string{"username": user, "password": password})
	return status
}

// TestSessionsAcrossInstances: two arbiter processes on one real
// redis-server share branch sessions and the sign-in throttle, and a
// session outlives a restart.
func TestSessionsAcrossInstances(t *testing.T) {
	env := sessionsEnv(t)
	a, b := startInstance(t, env), startInstance(t, env)
	ana := &browser{}
	if got, want := ana.signIn(t, a.base, sessAgent, sessPassword), http.StatusOK; got != want {
		t.Fatalf("sign in on A: status = %d, want %d", got, want)
	}
	if ana.cookie == nil || ana.csrf == "" {
		t.Fatalf("sign in on A gave cookie %v and CSRF token %q", ana.cookie, ana.csrf)
	}
	signedInCSRF := ana.csrf

	t.Run("a sign-in on A is a session on B", func(t *testing.T) {
		status, body := ana.do(t, b.base, http.MethodGet, "/branch/session", nil)
		if status != http.StatusOK || body["username"] != sessAgent || body["csrf_token"] != signedInCSRF {
			t.Fatalf("session on B = %d %v, want %s's session with the CSRF token of the sign-in", status, body, sessAgent)
		}
	})

	t.Run("a check placed on B records the agent", func(t *testing.T) {
		status, chk := ana.do(t, b.base, http.MethodPost, "/v1/checks", map[string]string{"customer_id": "C-77", "product": "credit_card"})
		if status != http.StatusCreated || chk["agent_id"] != sessAgent || chk["placed_by"] != web.BranchClientID {
			t.Fatalf("check on B = %d %v, want 201 placed by %s for %s", status, chk, web.BranchClientID, sessAgent)
		}
		req, _ := http.NewRequest(http.MethodGet, a.base+"/v1/customers/C-77/audit", nil)
		req.Header.Set("Authorization", "Bearer prod-checker-key-123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var audit struct{ Events []map[string]any }
		if err := json.NewDecoder(resp.Body).Decode(&audit); err != nil {
			t.Fatal(err)
		}
		if len(audit.Events) == 0 || audit.Events[0]["type"] != "checked" || audit.Events[0]["agent"] != sessAgent {
			t.Fatalf("audit read on A = %v, want a checked event by agent %s", audit.Events, sessAgent)
		}
	})

	// A restart, as a deploy makes one: SIGTERM, then a new process. (Here,
	// not in the subtest, which would stop the new process when it ends.)
	a.stop(t)
	a = startInstance(t, env)
	t.Run("the session survives a restart of A", func(t *testing.T) {
		status, body := ana.do(t, a.base, http.MethodGet, "/branch/session", nil)
		if status != http.StatusOK || body["username"] != sessAgent {
			t.Fatalf("session on the restarted A = %d %v, want 200 for %s", status, body, sessAgent)
		}
	})

	t.Run("a sign-out on B ends the session on A", func(t *testing.T) {
		if status, body := ana.do(t, b.base, http.MethodDelete, "/branch/session", nil); status != http.StatusNoContent {
			t.Fatalf("sign-out on B = %d %v, want 204", status, body)
		}
		for _, path := range []string{"/branch/session", "/v1/customers/C-77"} {
			if status, body := ana.do(t, a.base, http.MethodGet, path, nil); status != http.StatusUnauthorized {
				t.Errorf("GET %s on A after sign-out on B = %d %v, want 401", path, status, body)
			}
		}
	})

	t.Run("failed sign-ins on A and B add up to the block", func(t *testing.T) {
		guesser := &browser{}
		for i := range web.SignInMaxFailures - 1 {
			on := []*instance{a, b}[i%2]
			if got, want := guesser.signIn(t, on.base, sessOther, "guess"), http.StatusUnauthorized; got != want {
				t.Fatalf("failure %d: status = %d, want %d", i+1, got, want)
			}
		}
		last := []*instance{a, b}[(web.SignInMaxFailures-1)%2]
		if got, want := guesser.signIn(t, last.base, sessOther, "guess"), http.StatusTooManyRequests; got != want {
			t.Fatalf("failure %d: status = %d, want %d", web.SignInMaxFailures, got, want)
		}
		for _, on := range []*instance{a, b} {
			if got, want := (&browser{}).signIn(t, on.base, sessOther, sessOtherPw), http.StatusTooManyRequests; got != want {
				t.Errorf("right password while blocked: status = %d, want %d", got, want)
			}
		}
	})
}

// TestSessionsEmbedded: in embedded mode the sessions live in the embedded
// Redis, and the demo agent signs in, is known and signs out.
func TestSessionsEmbedded(t *testing.T) {
	s := startRun(t, map[string]string{})
	demo := &browser{}
	if got, want := demo.signIn(t, s.base, demoAgentUsername, demoAgentPassword), http.StatusOK; got != want {
		t.Fatalf("demo sign-in: status = %d, want %d", got, want)
	}
	if status, body := demo.do(t, s.base, http.MethodGet, "/branch/session", nil); status != http.StatusOK || body["username"] != demoAgentUsername {
		t.Fatalf("session = %d %v, want the demo agent's", status, body)
	}
	if status, body := demo.do(t, s.base, http.MethodDelete, "/branch/session", nil); status != http.StatusNoContent {
		t.Fatalf("sign-out = %d %v, want 204", status, body)
	}
	if status, _ := demo.do(t, s.base, http.MethodGet, "/branch/session", nil); status != http.StatusUnauthorized {
		t.Fatalf("session after sign-out = %d, want 401", status)
	}
}
