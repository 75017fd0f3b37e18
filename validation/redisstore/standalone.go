package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Script is a standalone Lua script (no customer prelude, no KEYS of a
// customer) that another of arbiter's adapters on the same Redis runs the
// way the Store runs its own: EVALSHA, EVAL when the server lacks it, never
// resent once it may have run, and a failure reported as the Store's are
// (CallError). It exists so that a script whose reply was lost is never
// sent twice, whichever package owns it, without a second copy of that
// rule.
type Script struct{ sc *luaScript }

// NewScript returns the script of source src, named name in errors.
func NewScript(name, src string) *Script {
	return &Script{sc: &luaScript{Script: redis.NewScript(src), src: src, name: name}}
}

// Name returns the script's name.
func (s *Script) Name() string { return s.sc.name }

// Load sends the script to the server (SCRIPT LOAD; on a cluster, to every
// master), so that each later call is one EVALSHA.
func (s *Script) Load(ctx context.Context, rdb redis.UniversalClient) error {
	if err := s.sc.Load(ctx, rdb).Err(); err != nil {
		return fmt.Errorf("load script %s: %w", s.sc.name, err)
	}
	return nil
}

// Run runs the script once on keys and argv. A transport failure once the
// script may have run is returned, never retried; cluster redirects, which
// prove it did not run, are followed. The command's error is go-redis's:
// wrap it with CallError.
func (s *Script) Run(ctx context.Context, rdb redis.UniversalClient, keys []string, argv ...any) *redis.Cmd {
	return evalOnce(ctx, rdb, s.sc, keys, argv)
}

// CallError classifies err, the failure of the Redis call named name, as
// the Store's errors are: a validation.Error of reason store_full (Redis at
// maxmemory refused a write, nothing was written) or unavailable (network,
// timeout, a transient error reply), or a plain error for an error reply
// that is a bug.
func CallError(name string, err error) error { return unavailable(name, err) }
