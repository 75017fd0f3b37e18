// Package proctest builds the project's commands and runs them as real child
// processes for tests: a process is started with -addr 127.0.0.1:0, and its
// base URL is read from the "... listening on http://ADDR" line it prints
// first on stdout.
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of a process start and stop.
const (
	StartTimeout = 20 * time.Second
	StopTimeout  = 5 * time.Second
)

// Build compiles the command package pkg (an import path such as
// "github.com/arbiter-bank/arbiter/cmd/arbiter") into dir and returns the
// binary's path. Call it once per test binary, from TestMain.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Proc is one running child process.
type Proc struct {
	// URL is the base URL the process printed, e.g. http://127.0.0.1:40123.
	URL string

	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed once the process has exited and been reaped
	err    error         // Wait's result, valid once done is closed
}

// Start runs bin with args and the extra environment env (appended to the
// test's own), waits for its "listening on" line, and stops it when the test
// ends. It fails the test if the process exits or stays silent for
// StartTimeout, quoting its stderr.
func Start(tb testing.TB, bin string, args, env []string) *Proc {
	tb.Helper()
	p, err := start(bin, args, env)
	if err != nil {
		tb.Fatalf("start %s: %v", filepath.Base(bin), err)
	}
	tb.Cleanup(func() { p.Stop() })
	return p
}

// StartNoCleanup is Start for TestMain and examples, where no testing.TB
// exists: the caller must call Stop.
func StartNoCleanup(bin string, args, env []string) (*Proc, error) { return start(bin, args, env) }

func start(bin string, args, env []string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	urls := make(chan string, 1)
	go p.readStdout(stdout, urls)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case u := <-urls:
		p.URL = u
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("exited before listening (%v); stderr:\n%s", p.err, p.Stderr())
	case <-time.After(StartTimeout):
		p.Stop()
		return nil, fmt.Errorf("no listening line within %v; stderr:\n%s", StartTimeout, p.Stderr())
	}
}

// readStdout sends the URL of the first "listening on" line, then drains
// stdout so the child never blocks on a full pipe.
func (p *Proc) readStdout(r io.Reader, urls chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		if sent {
			continue
		}
		if _, u, ok := strings.Cut(sc.Text(), " listening on "); ok {
			urls <- strings.TrimSpace(u)
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// Signal sends sig to the process (SIGHUP to reload its certificates, say).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stderr returns what the process wrote on stderr so far (its JSON logs).
func (p *Proc) Stderr() string { return p.stderr.String() }

// Wait waits up to timeout for the process to exit by itself and returns
// its exit code; ok is false if it is still running.
func (p *Proc) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// Stop sends SIGTERM, then SIGKILL after StopTimeout, and waits for the
// exit. Stopping a process that has exited is a no-op.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// WaitReady polls url+"/readyz" until it answers 200, failing the test after
// StartTimeout.
func WaitReady(tb testing.TB, url string) {
	tb.Helper()
	WaitReadyWith(tb, http.DefaultClient, url)
}

// WaitReadyWith is WaitReady asking through hc (an HTTPS client that
// trusts a test CA, say).
func WaitReadyWith(tb testing.TB, hc *http.Client, url string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("%s/readyz not 200 within %v (last error %v)", url, StartTimeout, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
