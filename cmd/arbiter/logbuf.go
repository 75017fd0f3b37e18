package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/arbiter-bank/arbiter/web"
)

// accessLogDelay is the longest an access-log line waits in memory before
// it is written: under load, one write then carries the lines of many
// requests instead of a write per request, a system call that cost about
// as much as the rest of the access log. Every other line is written at
// once, with the access-log lines before it, so the order stays and a
// warning or an error is never held back.
const accessLogDelay = 10 * time.Millisecond

// maxLogBuffer is the size at which buffered lines are written without
// waiting for the delay.
const maxLogBuffer = 64 << 10

// newServerLogger is newLogger for the server: its access-log lines
// (web.AccessLogMessage at info) are written in batches, at most
// accessLogDelay late (lost only if the process is killed within that
// window); flush writes what is left, at shutdown, and every line after
// it at once (a handler that outlives the shutdown still logs).
func newServerLogger(level string, w io.Writer) (log *slog.Logger, flush func(), err error) {
	return newBatchingLogger(level, w, accessLogDelay)
}

func newBatchingLogger(level string, w io.Writer, delay time.Duration) (log *slog.Logger, flush func(), err error) {
	buf := &logBuffer{w: w, delay: delay}
	inner, err := newLogger(level, buf)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(batchingHandler{Handler: inner.Handler(), buf: buf}), buf.Close, nil
}

// logBuffer gathers whole lines (a slog handler writes one per call) and
// writes them out on Flush, or accessLogDelay after the first one; once
// closed, it writes every line at once.
type logBuffer struct {
	w     io.Writer
	delay time.Duration

	mu     sync.Mutex
	buf    []byte
	armed  bool // a Flush is scheduled
	closed bool
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	switch {
	case b.closed || len(b.buf) >= maxLogBuffer:
		b.flushLocked()
	case !b.armed:
		b.armed = true
		time.AfterFunc(b.delay, b.Flush)
	}
	return len(p), nil
}

// Close writes every buffered line, and every later one as it comes:
// nothing waits for a timer the exiting process would not wait for.
func (b *logBuffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.closed = true
}

// Flush writes every buffered line.
func (b *logBuffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.armed = false
}

func (b *logBuffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.w.Write(b.buf) // as slog's own handlers, a failed write of the log is not the request's
	if cap(b.buf) > maxLogBuffer {
		b.buf = nil // a burst's buffer is not kept
	} else {
		b.buf = b.buf[:0]
	}
}

// batchingHandler flushes the buffer after every line but an access-log
// line at info.
type batchingHandler struct {
	slog.Handler
	buf *logBuffer
}

func (h batchingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Message != web.AccessLogMessage || r.Level > slog.LevelInfo {
		h.buf.Flush()
	}
	return err
}

func (h batchingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return batchingHandler{Handler: h.Handler.WithAttrs(as), buf: h.buf}
}

func (h batchingHandler) WithGroup(name string) slog.Handler {
	return batchingHandler{Handler: h.Handler.WithGroup(name), buf: h.buf}
}
