package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// TestExportAlarm: the archive refusing writes gives one error line (not
// one per round), its return one info line, and an outbox past 80% of its
// bound an error line naming the bound.
func TestExportAlarm(t *testing.T) {
	var out bytes.Buffer
	a := &exportAlarm{log: slog.New(slog.NewJSONHandler(&out, nil)), bound: 100}
	down := validation.ExportRound{ArchiveErr: errors.New("connection refused"), Err: errors.New("connection refused"), Waiting: 40, Fullest: 10}
	a.round(down)
	a.round(down)
	a.round(validation.ExportRound{Archived: 40})
	a.round(validation.ExportRound{Waiting: 90, Fullest: 85, Oldest: time.Minute})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"archive unavailable", "archive available again", "near its bound"}
	if len(lines) != len(want) {
		t.Fatalf("log lines:\n%s\nwant %d: %v", out.String(), len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %s, want it to say %q", i, lines[i], w)
		}
	}
}
