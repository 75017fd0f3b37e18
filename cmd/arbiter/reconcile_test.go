package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/internal/metrics"
	"github.com/arbiter-bank/arbiter/internal/policyfile"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile/feed"
	"github.com/arbiter-bank/arbiter/validation/reconcile/redisrecon"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

func TestNewReconciler(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "card.key")
	if err := os.WriteFile(key, []byte("s3cret-feed-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policyAt := func(url, keyFile string) *validation.Policy {
		p, err := policyfile.Parse([]byte(policyfile.DefaultYAML + `reconcile:
  sources:
    - { product: credit_card, url: "` + url + `", key_file: ` + keyFile + ` }
`))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := func(keyFile string) *validation.Policy { return policyAt("http://card.internal/v1/holdings", keyFile) }
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	store := redisstore.New(rdb, redisstore.Options{})
	runs := redisrecon.New(rdb, store)
	procMetrics := metrics.New(nil)
	ctx := context.Background()

	t.Run("reads and trims the key file", func(t *testing.T) {
		rec, err := newReconciler(ctx, policy(key), store, runs, procMetrics, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Sources) != 1 || rec.Sources[0].Name != "card.internal" {
			t.Fatalf("sources = %+v", rec.Sources)
		}
		if got := rec.Sources[0].Feed.(*feed.Client).Key; got != "s3cret-feed-key" {
			t.Errorf("key = %q", got)
		}
	})
	for name, file := range map[string]string{"a missing key file": filepath.Join(dir, "nope.key"), "an empty key file": empty} {
		t.Run(name+" stops the start", func(t *testing.T) {
			_, err := newReconciler(ctx, policy(file), store, runs, procMetrics, nil, false)
			if err == nil || !strings.Contains(err.Error(), "reconcile source credit_card") || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error = %v", err)
			}
		})
	}
	t.Run("production refuses a feed key over plain http, except to loopback", func(t *testing.T) {
		_, err := newReconciler(ctx, policy(key), store, runs, procMetrics, nil, true)
		if err == nil || !strings.Contains(err.Error(), "over plain http") {
			t.Errorf("http://card.internal with a key in production: %v, want refused", err)
		}
		for _, url := range []string{"https://card.internal/v1/holdings", "http://127.0.0.1:8081/v1/holdings", "http://localhost:8081/v1/holdings", "http://[::1]:8081/v1/holdings"} {
			if _, err := newReconciler(ctx, policyAt(url, key), store, runs, procMetrics, nil, true); err != nil {
				t.Errorf("%s with a key in production: %v", url, err)
			}
		}
		if _, err := newReconciler(ctx, policyAt("http://card.internal/v1/holdings", `""`), store, runs, procMetrics, nil, true); err != nil {
			t.Errorf("plain http without a key in production: %v", err)
		}
	})
	t.Run("without a reconcile block: no sources, cases still served", func(t *testing.T) {
		rec, err := newReconciler(ctx, validation.DefaultPolicy(), store, runs, procMetrics, nil, false)
		if err != nil || rec == nil || len(rec.Sources) != 0 {
			t.Errorf("reconciler = %+v, %v", rec, err)
		}
	})
}
