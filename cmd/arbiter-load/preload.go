package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// preload imports a credit card grant for customers PREFIX<from> to
// PREFIX<customers-1> straight into Redis through arbiter's own import
// script, so the data has exactly the shape the service writes (grants,
// meta and audit keys per customer).
func preload(ctx context.Context, f *scenarioFlags, stderr io.Writer) error {
	if f.redisURL == "" {
		return errors.New("preload needs -redis-url")
	}
	if f.cfg.Customers <= f.from {
		return fmt.Errorf("-customers %d must exceed -from %d", f.cfg.Customers, f.from)
	}
	opts, err := redis.ParseURL(f.redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	opts.PoolSize = f.concurrency + 10
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	store := redisstore.New(rdb, redisstore.Options{})
	if err := store.Load(ctx); err != nil {
		return err
	}
	svc := &validation.Service{Store: store, Policy: validation.DefaultPolicy()}
	admin := validation.Actor{ID: "ops", Roles: []validation.Role{validation.RoleAdmin}}
	prefix := f.prefix
	if prefix == "" {
		prefix = "pre"
	}
	var (
		next  atomic.Int64
		done  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	next.Store(int64(f.from))
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(stderr, "preload %d/%d customers (%.0f/s)\n", int64(f.from)+done.Load(), f.cfg.Customers, float64(done.Load())/time.Since(start).Seconds())
			}
		}
	}()
	granted := time.Now().Add(-24 * time.Hour)
	for range f.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(f.cfg.Customers) {
					return
				}
				if _, err := svc.Import(ctx, admin, fmt.Sprintf("%s%d", prefix, i), "credit_card", granted); err != nil {
					once.Do(func() { first = fmt.Errorf("import %s%d: %w", prefix, i, err) })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if first != nil {
		return first
	}
	fmt.Fprintf(stderr, "preload: %d customers imported in %s\n", done.Load(), time.Since(start).Round(time.Millisecond))
	return ctx.Err()
}
