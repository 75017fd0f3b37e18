package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// cancelOnListen is run's stdout in these tests: it records what run prints
// and cancels run's context once run says it is listening, so a URL that is
// accepted ends in a graceful shutdown instead of serving forever.
type cancelOnListen struct {
	mu     sync.Mutex
	b      bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnListen) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), "arbiter listening on") {
		w.cancel()
	}
	return len(p), nil
}

func (w *cancelOnListen) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestStartupNeverPrintsTheRedisPassword feeds run Redis URLs whose
// passwords hold the characters that break URL parsing, unencoded, and
// greps everything run says (stdout, stderr, the returned error) for the
// password and each of its pieces. A password that does not parse exactly
// as written must stop the start-up (not connect somewhere else with a
// piece of it); a correctly encoded one must work.
func TestStartupNeverPrintsTheRedisPassword(t *testing.T) {
	files := productionEnv(t)  // clients and signing key; its Redis is unused
	const dead = "127.0.0.1:1" // nothing listens: start-up warns and serves
	tests := []struct {
		name, password, url, sentinel string
		wantErr                       bool
	}{
		{"comma: not a seed list", "Zq7kv,Wm3xp", "redis://arbiter:%s@" + dead + "/0", "", false},
		{"comma after digits: not a seed list", "6380,Wm3xpT", "redis://arbiter:%s@" + dead, "", false},
		{"at sign", "Zq7kv@Wm3xp", "redis://arbiter:%s@" + dead, "", false},
		{"slash", "Zq7kv/Wm3xp", "redis://arbiter:%s@" + dead + "/0", "", true},
		{"percent", "Zq7kv%Wm3xp", "redis://arbiter:%s@" + dead, "", true},
		{"hash after digits: a fragment", "4242#Wm3xpT", "redis://arbiter:%s@" + dead, "", true},
		{"every one at once", "Zq7kv,Wm3xp@Yt5rb:Hn2cd/Pl9ws%Qe4fg", "redis://arbiter:%s@" + dead, "", true},
		{"cluster seeds", "Zq7kv/Wm3xp", "redis://arbiter:%s@" + dead + "?addr=127.0.0.1:2", "", true},
		{"cluster list", "Zq7kv%Wm3xp", "redis://arbiter:%s@" + dead + ",127.0.0.1:2", "", true},
		{"sentinel", "Zq7kv/Wm3xp", "redis://arbiter:%s@" + dead, "mymaster", true},
		{"comma in a cluster list", "Zq7kv,Wm3xp", "redis://arbiter:%s@" + dead + ",127.0.0.1:2", "", false},
		{"colon is allowed", "Zq7kv:Wm3xp", "redis://arbiter:%s@" + dead, "", false},
		{"percent-encoded", "Zq7kv,Wm3xp@Yt5rb:Hn2cd/Pl9ws%Qe4fg", "redis://arbiter:%s@" + dead, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pw := tt.password
			if tt.name == "percent-encoded" {
				pw = url.QueryEscape(pw)
			}
			env := map[string]string{
				"ARBITER_ADDR":                  "127.0.0.1:0",
				"ARBITER_REDIS_URL":             strings.Replace(tt.url, "%s", pw, 1),
				"ARBITER_REDIS_SENTINEL_MASTER": tt.sentinel,
				"ARBITER_REDIS_TIMEOUT":         "100ms",
				"ARBITER_CLIENTS":               files["ARBITER_CLIENTS"],
				"ARBITER_SIGNING_KEY":           files["ARBITER_SIGNING_KEY"],
			}
			// The deadline only bounds a run that neither fails nor listens.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			stdout := &cancelOnListen{cancel: cancel}
			var stderr syncBuffer
			err := run(ctx, []string{"arbiter"}, func(k string) string { return env[k] }, nil, stdout, &stderr)
			said := stdout.String() + stderr.String()
			if err != nil {
				said += err.Error()
			}
			if got := err != nil; got != tt.wantErr {
				t.Errorf("run error = %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "ARBITER_REDIS_URL") {
				t.Errorf("run error = %v, want it to name ARBITER_REDIS_URL", err)
			}
			if !tt.wantErr {
				cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				rdb, err := newRedisClient(cfg, cfg.RedisURL)
				if err != nil {
					t.Fatal(err)
				}
				defer rdb.Close()
				if got := clientPassword(rdb); got != tt.password {
					t.Errorf("the client's password = %q, want %q", got, tt.password)
				}
			}
			for _, secret := range passwordPieces(tt.password) {
				if strings.Contains(said, secret) {
					t.Errorf("output holds %q of the password %q:\n%s", secret, tt.password, said)
				}
			}
		})
	}
}

// clientPassword is the password a client authenticates with.
func clientPassword(rdb redis.UniversalClient) string {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().Password
	case *redis.ClusterClient:
		return c.Options().Password
	}
	return fmt.Sprintf("a %T", rdb)
}

// passwordPieces is a password, its encoded forms and every piece of it
// between the characters URLs treat specially.
func passwordPieces(pw string) []string {
	out := []string{pw, url.QueryEscape(pw), url.PathEscape(pw)}
	for _, p := range strings.FieldsFunc(pw, func(r rune) bool { return strings.ContainsRune(",@:/%#?", r) }) {
		// A short run of digits ("6380" of "6380,Wm3xpT") turns up in any
		// log line's timestamp by chance (…263807945Z): only the other
		// pieces, and the whole password, prove a leak.
		if len(p) >= 4 && strings.Trim(p, "0123456789") != "" {
			out = append(out, p)
		}
	}
	return out
}
