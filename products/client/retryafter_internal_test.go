package client

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{"3600", time.Hour},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-1", 0},
		{"+3", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999", maxRetryAfter}, // more seconds than maxRetryAfter
		{"99999999999999999999999", maxRetryAfter}, // more than uint64 holds
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}
