package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/arbiter-bank/arbiter/internal/metrics"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
	"github.com/arbiter-bank/arbiter/validation/reconcile/feed"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// newReconciler builds the reconciler of the policy's reconcile: block,
// reading each feed's key file; without the block it has no sources (cases
// can still be read, runs answer not_found). In production it refuses a
// source that would send its key in clear text (http:// to a host that is
// not loopback).
func newReconciler(ctx context.Context, policy *validation.Policy, store *redisstore.Store, runs reconcile.Store, metrics *metrics.Set, log *slog.Logger, production bool) (*reconcile.Reconciler, error) {
	rec := &reconcile.Reconciler{Ledger: store, Store: runs, Policy: policy, Base: ctx, Log: log,
		OnFinding: metrics.ReconcileFinding, OnSourceDone: metrics.ReconcileSourceDone}
	if policy.Reconcile == nil {
		return rec, nil
	}
	rec.Config = policy.Reconcile.WithDefaults()
	hc := &http.Client{Timeout: rec.Config.Timeout}
	for _, s := range rec.Config.Sources {
		if production && s.KeyInClear() {
			return nil, fmt.Errorf("reconcile source %s: production mode refuses to send its feed key (key_file) over plain http to %s: use an https:// URL (or a loopback host)", s.Product, s.URL)
		}
		var key string
		if s.KeyFile != "" {
			raw, err := os.ReadFile(s.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("reconcile source %s: key file: %w", s.Product, err)
			}
			if key = strings.TrimSpace(string(raw)); key == "" {
				return nil, fmt.Errorf("reconcile source %s: key file %s is empty", s.Product, s.KeyFile)
			}
		}
		rec.Sources = append(rec.Sources, reconcile.Source{Product: s.Product, Name: s.Name, Feed: &feed.Client{URL: s.URL, Key: key, HTTP: hc}})
	}
	return rec, nil
}

// instanceID names this process in the schedule claim.
func instanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
