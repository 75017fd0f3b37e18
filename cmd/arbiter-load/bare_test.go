package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/load"
)

// startBare serves the bare baseline on a free loopback port until the
// test ends, and checks it then shuts down cleanly.
func startBare(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveBareOn(ctx, ln, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bare server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func TestBareAnswers204ToAnything(t *testing.T) {
	base := startBare(t)
	for _, tc := range []struct{ method, path, auth string }{
		{http.MethodGet, "/readyz", ""},
		{http.MethodGet, "/v1/ping", "Bearer not-a-key"},
		{http.MethodPost, "/v1/checks", ""},
	} {
		req, err := http.NewRequest(tc.method, base+tc.path, bytes.NewBufferString(`{"customer_id":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusNoContent; got != want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, got, want)
		}
	}
}

// TestBareUnderTheSameClients drives the bare server with the clients
// run.sh compares it through: the closed loop (with the serving process's
// CPU per request, here the test's own process) and the open-model ping.
func TestBareUnderTheSameClients(t *testing.T) {
	base := startBare(t)
	dir := t.TempDir()
	closedJSON := filepath.Join(dir, "closed.json")
	var out bytes.Buffer
	err := run(context.Background(), []string{"arbiter-load", "closed", "-base-url", base, "-op", "ping",
		"-concurrency", "4", "-duration", "1s", "-pid", strconv.Itoa(os.Getpid()), "-json", closedJSON},
		func(string) string { return "" }, &out, &out)
	if err != nil {
		t.Fatalf("closed: %v\n%s", err, out.String())
	}
	var rep closedReport
	readJSON(t, closedJSON, &rep)
	if rep.Endpoint.Count == 0 || rep.Endpoint.Statuses["204"] != rep.Endpoint.Count {
		t.Fatalf("closed: statuses %v of %d requests, want all 204", rep.Endpoint.Statuses, rep.Endpoint.Count)
	}
	if rep.ServerCPUUs <= 0 {
		t.Fatalf("closed: server CPU per request = %v, want > 0 with -pid", rep.ServerCPUUs)
	}

	openJSON := filepath.Join(dir, "open.json")
	out.Reset()
	err = run(context.Background(), []string{"arbiter-load", "ping", "-base-url", base, "-path", "/v1/ping",
		"-rate", "100", "-duration", "1s", "-quiet", "-json", openJSON}, func(string) string { return "" }, &out, &out)
	if err != nil {
		t.Fatalf("ping: %v\n%s", err, out.String())
	}
	var open load.Report
	readJSON(t, openJSON, &open)
	if open.Failed != 0 || open.Dropped != 0 || open.Endpoints["ping"].Count == 0 {
		t.Fatalf("ping: %d failed, %d dropped, endpoints %v", open.Failed, open.Dropped, open.Endpoints)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
