package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is an arbiter started by Spawn.
type Process struct {
	Base string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Spawn starts the arbiter binary bin on a free loopback port (it appends
// -addr 127.0.0.1:0) with extra args and env (added to this process's
// environment), reads the address from its first stdout line and waits up
// to 15 s for /readyz to answer 200. Its stderr (JSON logs) goes to logs.
func Spawn(ctx context.Context, bin string, args, env []string, logs io.Writer) (*Process, error) {
	cmd := exec.Command(bin, append(args, "-addr", "127.0.0.1:0")...)
	cmd.Env = append(os.Environ(), env...)
	if logs == nil {
		logs = io.Discard
	}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() { // keep draining so arbiter never blocks on stdout
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
	}()
	go func() { p.err = cmd.Wait(); close(p.done) }()

	select {
	case line, ok := <-lines:
		base, found := strings.CutPrefix(line, "arbiter listening on ")
		if !ok || !found {
			p.Stop()
			return nil, fmt.Errorf("arbiter's first line %q is not its address", line)
		}
		p.Base = strings.TrimSpace(base)
	case <-p.done:
		return nil, fmt.Errorf("arbiter exited at start: %v", p.err)
	case <-time.After(15 * time.Second):
		p.Stop()
		return nil, errors.New("arbiter printed no address within 15s")
	}
	if err := WaitReady(ctx, p.Base, 15*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// WaitReady polls base/readyz until it answers 200 (arbiter) or 204 (the
// bare baseline, which answers 204 to anything) or timeout passes.
func WaitReady(ctx context.Context, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s/readyz not ready within %s: %s", base, timeout, last)
}

// Stop sends SIGTERM, waits up to 10 s for a graceful exit, then kills.
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
