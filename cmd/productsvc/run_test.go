package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFeedOpenWarns: without PRODUCTSVC_FEED_KEY the holdings feed (every
// customer holding the product) answers anyone; productsvc has no
// production mode to refuse in, so it says so at start, at WARN.
func TestFeedOpenWarns(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		warn      bool
	}{{"no key", "", true}, {"a key", "feed-key-0123456789", false}} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"PRODUCTSVC_ADDR": "127.0.0.1:0", "PRODUCTSVC_PRODUCT": "credit_card", "PRODUCTSVC_ID": "card-service",
				"PRODUCTSVC_ARBITER_KEY": "k", "PRODUCTSVC_ARBITER_URL": "http://127.0.0.1:1",
				"PRODUCTSVC_DB": filepath.Join(t.TempDir(), "card.db"), "PRODUCTSVC_FEED_KEY": tc.key,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			var stderr bytes.Buffer
			_ = run(ctx, []string{"productsvc"}, func(k string) string { return env[k] }, io.Discard, &stderr)
			var warned bool
			for _, line := range strings.Split(stderr.String(), "\n") {
				warned = warned || (strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, "PRODUCTSVC_FEED_KEY"))
			}
			if warned != tc.warn {
				t.Fatalf("feed-open warning = %v, want %v; log:\n%s", warned, tc.warn, stderr.String())
			}
		})
	}
}
