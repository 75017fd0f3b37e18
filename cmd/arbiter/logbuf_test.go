package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/web"
)

func TestBatchingLogger(t *testing.T) {
	lines := func(b *bytes.Buffer) []string {
		var msgs []string
		for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			if l != "" {
				_, rest, _ := strings.Cut(l, `"msg":"`)
				msg, _, _ := strings.Cut(rest, `"`)
				msgs = append(msgs, msg)
			}
		}
		return msgs
	}
	t.Run("holds access-log lines until another line comes, in order", func(t *testing.T) {
		var out bytes.Buffer
		log, flush, err := newBatchingLogger("info", &out, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		defer flush()
		log.Info(web.AccessLogMessage, "route", "/v1/ping")
		log.Info(web.AccessLogMessage, "route", "/v1/checks")
		if got := out.Len(); got != 0 {
			t.Fatalf("wrote %d bytes before any other line, want 0: %s", got, out.String())
		}
		log.Error("request failed")
		if got, want := strings.Join(lines(&out), ","), "request,request,request failed"; got != want {
			t.Fatalf("lines = %s, want %s", got, want)
		}
	})
	t.Run("writes other lines at once", func(t *testing.T) {
		var out bytes.Buffer
		log, _, err := newBatchingLogger("info", &out, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("listening")
		log.With("component", "x").Info("started")
		if got, want := strings.Join(lines(&out), ","), "listening,started"; got != want {
			t.Fatalf("lines = %s, want %s", got, want)
		}
	})
	t.Run("flush writes what is held", func(t *testing.T) {
		var out bytes.Buffer
		log, flush, err := newBatchingLogger("info", &out, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		log.Info(web.AccessLogMessage)
		flush()
		if got, want := strings.Join(lines(&out), ","), "request"; got != want {
			t.Fatalf("lines = %s, want %s", got, want)
		}
	})
	t.Run("after flush, writes access-log lines at once", func(t *testing.T) {
		var out bytes.Buffer
		log, flush, err := newBatchingLogger("info", &out, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		flush()
		log.Info(web.AccessLogMessage, "route", "/v1/ping") // a handler that outlived the shutdown
		if got, want := strings.Join(lines(&out), ","), "request"; got != want {
			t.Fatalf("lines = %q, want %q: a line after the final flush waits for a timer nobody waits for", got, want)
		}
	})
	t.Run("writes held lines after the delay", func(t *testing.T) {
		out := &syncBuffer{}
		log, _, err := newBatchingLogger("info", out, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		log.Info(web.AccessLogMessage)
		deadline := time.Now().Add(10 * time.Second)
		for out.String() == "" {
			if time.Now().After(deadline) {
				t.Fatal("the access-log line was never written")
			}
			time.Sleep(time.Millisecond) // polling for the timer, the subject of the test
		}
	})
}
