package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// bareHandler answers every request 204 No Content and reads nothing of
// it, the Authorization header included: the least a Go HTTP service can
// do per request, the baseline arbiter's own requests are measured against.
func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
}

// newBareServer is an http.Server with the settings cmd/arbiter gives its
// own (timeouts, header limit), so the two differ in the handler only.
func newBareServer() *http.Server {
	return &http.Server{
		Handler:           bareHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// serveBare is `arbiter-load bare`: a bare net/http server on -addr, in a
// process of its own (its CPU is then /proc/<pid>/stat alone), until ctx
// ends (SIGINT or SIGTERM).
func serveBare(ctx context.Context, f *scenarioFlags, stderr io.Writer) error {
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	return serveBareOn(ctx, ln, stderr)
}

// serveBareOn serves the bare baseline on ln until ctx ends.
func serveBareOn(ctx context.Context, ln net.Listener, stderr io.Writer) error {
	srv := newBareServer()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintln(stderr, "bare: serving 204 on", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("bare: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("bare: shutdown: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bare: %w", err)
	}
	return nil
}
