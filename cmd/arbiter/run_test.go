package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// started is a run(...) in a goroutine, with its address and outputs.
type started struct {
	base   string
	stderr *syncBuffer
	exited chan struct{} // closed when run returns, then err is set
	err    error
	cancel context.CancelFunc
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun calls run with the environment env and waits for /readyz.
func startRun(tb testing.TB, env map[string]string) *started {
	tb.Helper()
	return startRunWith(tb, env, http.DefaultClient, true)
}

// startRunWith is startRun asking /readyz through hc (an HTTPS client, say),
// and waiting for it only if waitReady.
func startRunWith(tb testing.TB, env map[string]string, hc *http.Client, waitReady bool) *started {
	tb.Helper()
	return startRunOn(tb, env, hc, waitReady, time.Now)
}

// startRunOn is startRunWith on the host clock local (runOn).
func startRunOn(tb testing.TB, env map[string]string, hc *http.Client, waitReady bool, local func() time.Time) *started {
	tb.Helper()
	env["ARBITER_ADDR"] = "127.0.0.1:0"
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	s := &started{stderr: &syncBuffer{}, exited: make(chan struct{}), cancel: cancel}
	go func() {
		s.err = runOn(ctx, local, []string{"arbiter"}, getenv, outW, s.stderr)
		outW.CloseWithError(io.EOF)
		close(s.exited)
	}()
	lines := bufio.NewScanner(outR)
	if !lines.Scan() {
		cancel()
		<-s.exited
		tb.Fatalf("run printed nothing; stderr: %s; err: %v", s.stderr, s.err)
	}
	base, ok := strings.CutPrefix(lines.Text(), "arbiter listening on ")
	if !ok {
		tb.Fatalf("first line = %q", lines.Text())
	}
	s.base = base
	go io.Copy(io.Discard, outR) // drain the demo banner
	tb.Cleanup(func() {
		cancel()
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			tb.Error("run did not return after cancel")
		}
	})
	if !waitReady {
		return s
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not ready in 10s: %v; stderr: %s", err, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func post(tb testing.TB, url, key, body string) (int, map[string]any) {
	tb.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, out
}

// flow runs README's walk-through: check, redeem, refused.
func flow(tb testing.TB, base, checkerKey, cardKey string) {
	tb.Helper()
	status, chk := post(tb, base+"/v1/checks", checkerKey, `{"customer_id":"C-1001","product":"credit_card"}`)
	if status != http.StatusCreated {
		tb.Fatalf("check = %d %v", status, chk)
	}
	status, red := post(tb, base+"/v1/redemptions", cardKey, `{"token":"`+chk["token"].(string)+`"}`)
	if status != http.StatusCreated || red["check_id"] != chk["check_id"] {
		tb.Fatalf("redeem = %d %v", status, red)
	}
	status, ref := post(tb, base+"/v1/checks", checkerKey, `{"customer_id":"C-1001","product":"personal_loan"}`)
	if status != http.StatusConflict || ref["reason"] != "conflicting_product" {
		tb.Fatalf("loan check = %d %v, want 409 conflicting_product", status, ref)
	}
}

func TestRunEmbedded(t *testing.T) {
	s := startRun(t, map[string]string{})
	flow(t, s.base, "demo-checker-key", "demo-card-key")
	if !strings.Contains(s.stderr.String(), "EMBEDDED MODE") {
		t.Error("embedded mode is not announced in the logs")
	}
	s.cancel()
	select {
	case <-s.exited:
		if s.err != nil {
			t.Fatalf("run returned %v after a graceful shutdown", s.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not shut down")
	}
}

// signingKeyFile writes a fresh Ed25519 signing key (PEM) to a file of
// the test's and returns its path, for ARBITER_SIGNING_KEY.
func signingKeyFile(tb testing.TB) string {
	tb.Helper()
	key, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	data, err := tokens.MarshalPrivateKeyPEM(key)
	if err != nil {
		tb.Fatal(err)
	}
	return writeFile(tb, "signing.pem", string(data))
}

func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// productionEnv is a complete production configuration on a real Redis.
func productionEnv(tb testing.TB) map[string]string {
	tb.Helper()
	srv := redistest.MustStartRedis(tb)
	return map[string]string{
		"ARBITER_REDIS_URL":   srv.URL(),
		"ARBITER_SIGNING_KEY": signingKeyFile(tb),
		"ARBITER_CLIENTS": writeFile(tb, "clients.yaml", `clients:
  - { id: branch-portal, key: prod-checker-key-123, roles: [checker] }
  - { id: card-service, key: prod-card-key-123456, roles: [checker, redeemer] }
`),
	}
}

func TestRunProduction(t *testing.T) {
	s := startRun(t, productionEnv(t))
	flow(t, s.base, "prod-checker-key-123", "prod-card-key-123456")
	// Demo keys do not exist in production.
	status, body := post(t, s.base+"/v1/checks", "demo-checker-key", `{"customer_id":"C-2","product":"credit_card"}`)
	if status != http.StatusUnauthorized {
		t.Fatalf("demo key in production = %d %v, want 401", status, body)
	}
}

func TestRunRefusesToStart(t *testing.T) {
	full := productionEnv(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"production without clients", without(full, "ARBITER_CLIENTS"), nil, "ARBITER_CLIENTS"},
		{"production without signing key", without(full, "ARBITER_SIGNING_KEY"), nil, "ARBITER_SIGNING_KEY"},
		{"unreadable policy", map[string]string{"ARBITER_POLICY": "/nonexistent/policy.yaml"}, nil, "policy"},
		{"bad policy", map[string]string{"ARBITER_POLICY": writeFile(t, "p.yaml", "products: {}\n")}, nil, "no products"},
		{"bad clients", map[string]string{"ARBITER_CLIENTS": writeFile(t, "c.yaml", "clients:\n  - { id: a, key: short, roles: [checker] }\n")}, nil, "shorter than"},
		{"bad signing key", map[string]string{"ARBITER_SIGNING_KEY": writeFile(t, "k.pem", "not a key")}, nil, "k.pem"},
		{"bad duration", map[string]string{"ARBITER_REDIS_TIMEOUT": "soon"}, nil, "ARBITER_REDIS_TIMEOUT"},
		{"bad redis url", map[string]string{"ARBITER_REDIS_URL": "http://x", "ARBITER_CLIENTS": full["ARBITER_CLIENTS"], "ARBITER_SIGNING_KEY": full["ARBITER_SIGNING_KEY"]}, nil, "ARBITER_REDIS_URL"},
		{"stray argument", map[string]string{}, []string{"serve"}, "unexpected arguments"},
		{"archive in embedded mode", map[string]string{"ARBITER_ARCHIVE_URL": "postgres://127.0.0.1/x"}, nil, "ARBITER_ARCHIVE_URL needs ARBITER_REDIS_URL"},
		{"outbox bound 0", map[string]string{"ARBITER_OUTBOX_MAX": "0"}, nil, "ARBITER_OUTBOX_MAX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"arbiter"}, tt.args...), func(k string) string { return tt.env[k] }, nil, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func without(env map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func TestHelpListsEverySetting(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"arbiter", "-h"}, func(string) string { return "" }, nil, io.Discard, &stderr); err != nil {
		t.Fatalf("-h returned %v", err)
	}
	var c config
	for _, v := range flags(&c, func(string) string { return "" }, io.Discard).Vars() {
		if !strings.Contains(stderr.String(), "-"+v.Flag) || !strings.Contains(stderr.String(), v.Env) {
			t.Errorf("-h does not document -%s / %s", v.Flag, v.Env)
		}
	}
}

func TestPprofOnItsOwnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := startRun(t, map[string]string{"ARBITER_PPROF_ADDR": addr})
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof index = %d", resp.StatusCode)
	}
	// Never on the API's listener.
	resp, err = http.Get(s.base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pprof on the API listener = %d, want 404", resp.StatusCode)
	}
}

func TestFlagBeatsEnvironment(t *testing.T) {
	cfg, err := parseConfig([]string{"-addr", "127.0.0.1:9"}, func(k string) string {
		return map[string]string{"ARBITER_ADDR": "127.0.0.1:8", "ARBITER_ISSUER": "bank"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9" || cfg.Issuer != "bank" || cfg.RedisTimeout != 500*time.Millisecond {
		t.Fatalf("config = %+v", cfg)
	}
}

// TestEmbeddedHoldsExpire: the embedded Redis's clock is driven by real
// time, so a hold expires on its own and the customer is free again.
func TestEmbeddedHoldsExpire(t *testing.T) {
	policy := writeFile(t, "policy.yaml", `
products:
  credit_card:   { hold_ttl: 1s, redeemers: [card-service] }
  personal_loan: { hold_ttl: 1s, redeemers: [loan-service] }
exclusive: [[credit_card, personal_loan]]
`)
	s := startRun(t, map[string]string{"ARBITER_POLICY": policy})
	if status, body := post(t, s.base+"/v1/checks", "demo-checker-key", `{"customer_id":"C-9","product":"credit_card"}`); status != http.StatusCreated {
		t.Fatalf("check = %d %v", status, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body := post(t, s.base+"/v1/checks", "demo-checker-key", `{"customer_id":"C-9","product":"personal_loan"}`)
		if status == http.StatusCreated {
			return
		}
		if status != http.StatusConflict || body["reason"] != "hold_exists" {
			t.Fatalf("loan check = %d %v", status, body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the 1 s hold never expired in embedded mode")
		}
		time.Sleep(50 * time.Millisecond) // real TTLs are the subject here
	}
}
