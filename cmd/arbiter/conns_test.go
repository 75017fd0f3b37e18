package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestAutoMaxConnections(t *testing.T) {
	for _, tt := range []struct {
		nofile uint64
		want   int
	}{{0, 1024}, {16, 16}, {256, 192}, {1024, 768}, {1 << 20, 4096}} {
		if got := autoMaxConnections(tt.nofile); got != tt.want {
			t.Errorf("autoMaxConnections(%d) = %d, want %d", tt.nofile, got, tt.want)
		}
	}
}

// TestChecksFlowPastIdleConnections is the incident: an instance under a
// 256-file limit while clients leave 1,000 connections open and idle, half
// of them keep-alive after one request, half that never sent one. Checks
// still succeed promptly, because at the cap (by default three quarters
// of the limit) idle and silent connections make room.
func TestChecksFlowPastIdleConnections(t *testing.T) {
	const nofile, idle = 256, 1000
	env := productionEnv(t)
	sh := exec.Command("/bin/sh", "-c", `ulimit -n `+strconv.Itoa(nofile)+` && exec "$0" "$@"`, os.Args[0], "-addr", "127.0.0.1:0", "-log-level", "warn")
	p := startInstanceCmd(t, env, sh)
	addr := strings.TrimPrefix(p.base, "http://")

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	kept := 0
	for range idle / 2 { // keep-alive, idle after one request
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: arbiter\r\n\r\n"); err != nil {
			break
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			break // the server stopped accepting
		}
		resp.Body.Close()
		kept++
	}
	for len(conns) < idle { // silent: never send a request
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	t.Logf("%d connections open from the client's side, %d of them keep-alive after a request", len(conns), kept)

	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 20 {
		start := time.Now()
		req, _ := http.NewRequest("POST", p.base+"/v1/checks", strings.NewReader(`{"customer_id":"C-IDLE-`+strconv.Itoa(i)+`","product":"credit_card"}`))
		req.Header.Set("Authorization", "Bearer prod-checker-key-123")
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("check %d with %d idle connections open: %v; stderr: %s", i, len(conns), err, p.stderr)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("check %d = %d", i, resp.StatusCode)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("check %d took %s", i, d)
		}
	}

	m := scrape(t, hc, p.base)
	if open, max := m["arbiter_http_connections_open"], m["arbiter_http_connections_max"]; max != nofile*3/4 || open > max {
		t.Errorf("open connections %v, cap %v; want the cap %d, not exceeded", open, max, nofile*3/4)
	}
	if m["arbiter_http_connections_closed_for_cap_total"] < idle-nofile {
		t.Errorf("closed for the cap: %v, want at least %d", m["arbiter_http_connections_closed_for_cap_total"], idle-nofile)
	}
}

// scrape reads /metrics into name → value, summing a metric's series.
func scrape(tb testing.TB, hc *http.Client, base string) map[string]float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			switch {
			case m.Gauge != nil:
				out[name] += m.Gauge.GetValue()
			case m.Counter != nil:
				out[name] += m.Counter.GetValue()
			}
		}
	}
	return out
}
