package redisstore

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRefusedNamesTheCommand: only a refusal of FCALL (or FUNCTION)
// itself means the server has no functions for this client. A refusal of
// a command the function calls inside means the function ran, maybe after
// writing, and must never be followed by the script.
func TestRefusedNamesTheCommand(t *testing.T) {
	for _, tt := range []struct {
		msg, cmd string
		want     bool
	}{
		{"ERR unknown command `fcall`, with args beginning with: `arbiter_x_check`, ", "fcall", true},   // Redis 6, miniredis
		{"ERR unknown command 'FUNCTION', with args beginning with: 'LOAD' ", "function", true},         // older wording
		{"NOPERM User arbiter has no permissions to run the 'fcall' command", "fcall", true},            // ACL without +fcall
		{"NOPERM User arbiter has no permissions to run the 'function|load' command", "function", true}, // ACL without +function|load
		{"NOPERM User arbiter has no permissions to run the 'hset' command", "fcall", false},            // inside the function
		{"NOPERM No permissions to access a key", "fcall", false},                                       // inside the function
		{"ERR user_function:12: Script attempted to access nonexistent global variable 'x'", "fcall", false},
		{"ERR Function not found", "fcall", false},
	} {
		if got := refused(redisError(tt.msg), tt.cmd); got != tt.want {
			t.Errorf("refused(%q, %s) = %v, want %v", tt.msg, tt.cmd, got, tt.want)
		}
	}
	if refused(errors.New("dial tcp: connection refused"), "fcall") {
		t.Error("a transport error read as a refusal")
	}
}

// redisError is err as go-redis returns a server's error reply.
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

var _ redis.Error = redisError("")

// TestLibraryNameDigestsAllOfIt: the library's name is a digest of its
// whole code, the registrations (KEYS and ARGV positions, the reply's
// shape) included, so two releases that differ anywhere never share a
// name and never replace each other's functions.
func TestLibraryNameDigestsAllOfIt(t *testing.T) {
	src := strings.ReplaceAll(functions.src, functions.name, "arbiter_NAME")
	if !strings.Contains(src, "redis.register_function('arbiter_NAME_check'") {
		t.Fatalf("the registration does not carry the library's name:\n%s", src[len(src)-400:])
	}
	sum := sha1.Sum([]byte(src))
	if want := "arbiter_" + hex.EncodeToString(sum[:6]); functions.name != want {
		t.Fatalf("library name %s, want %s (the digest of the whole library)", functions.name, want)
	}
	if checkScript.fn != functions.name+"_check" {
		t.Fatalf("check's function %q, want %s_check", checkScript.fn, functions.name)
	}
}
