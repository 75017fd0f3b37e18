package web

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineCtx(t *testing.T) {
	wait := func(t *testing.T, done <-chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("not done")
		}
	}
	t.Run("a request that never waits makes nothing", func(t *testing.T) {
		at := time.Now().Add(time.Hour)
		ctx := &deadlineCtx{Context: context.Background(), deadline: at}
		if d, ok := ctx.Deadline(); !ok || !d.Equal(at) {
			t.Fatalf("Deadline() = %v, %v, want %v, true", d, ok, at)
		}
		ctx.cancel()
		if ctx.made.Load() != nil {
			t.Fatal("a context was made without Done or Err")
		}
	})
	t.Run("ends at the deadline", func(t *testing.T) {
		ctx := &deadlineCtx{Context: context.Background(), deadline: time.Now().Add(time.Millisecond)}
		defer ctx.cancel()
		wait(t, ctx.Done()) // the deadline is the subject: a real millisecond passes
		if got, want := ctx.Err(), context.DeadlineExceeded; !errors.Is(got, want) {
			t.Fatalf("Err() = %v, want %v", got, want)
		}
	})
	t.Run("cancel ends it", func(t *testing.T) {
		ctx := &deadlineCtx{Context: context.Background(), deadline: time.Now().Add(time.Hour)}
		done := ctx.Done()
		if ctx.Err() != nil {
			t.Fatalf("Err() = %v before the end", ctx.Err())
		}
		ctx.cancel()
		wait(t, done)
		if got, want := ctx.Err(), context.Canceled; !errors.Is(got, want) {
			t.Fatalf("Err() = %v, want %v", got, want)
		}
	})
	t.Run("made after cancel, it has ended", func(t *testing.T) {
		ctx := &deadlineCtx{Context: context.Background(), deadline: time.Now().Add(time.Hour)}
		ctx.cancel()
		if got, want := ctx.Err(), context.Canceled; !errors.Is(got, want) {
			t.Fatalf("Err() = %v, want %v", got, want)
		}
	})
	t.Run("the parent's earlier deadline and cancellation win", func(t *testing.T) {
		early := time.Now().Add(time.Minute)
		parent, cancelParent := context.WithDeadline(context.Background(), early)
		ctx := &deadlineCtx{Context: parent, deadline: time.Now().Add(time.Hour)}
		defer ctx.cancel()
		if d, _ := ctx.Deadline(); !d.Equal(early) {
			t.Fatalf("Deadline() = %v, want the parent's %v", d, early)
		}
		cancelParent()
		wait(t, ctx.Done())
	})
	t.Run("a derived context ends with it", func(t *testing.T) {
		ctx := &deadlineCtx{Context: context.Background(), deadline: time.Now().Add(time.Hour)}
		child, cancelChild := context.WithCancel(ctx)
		defer cancelChild()
		if v := child.Value(ctxKey{}); v != nil {
			t.Fatalf("Value = %v", v)
		}
		ctx.cancel()
		wait(t, child.Done())
	})
	t.Run("values come from the parent", func(t *testing.T) {
		ctx := &deadlineCtx{Context: context.WithValue(context.Background(), ctxKey{}, "v"), deadline: time.Now().Add(time.Hour)}
		defer ctx.cancel()
		if got := ctx.Value(ctxKey{}); got != "v" {
			t.Fatalf("Value before made = %v, want v", got)
		}
		_ = ctx.Done()
		if got := ctx.Value(ctxKey{}); got != "v" {
			t.Fatalf("Value after made = %v, want v", got)
		}
	})
}

type ctxKey struct{}
