package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// The check runs as a Redis function (FCALL) where the server has them
// (Redis 7+), and as a script (EVALSHA) elsewhere. A script is one Lua
// chunk that Redis runs whole on every call, so every call first defines
// the prelude's 30-odd functions again: measured on redis 7.0, that is
// about 13 µs of a check's 50–65, more than the whole minimal hold script
// (10 µs). A function library is run once, when it is loaded; FCALL then
// only calls the function it registered. The library is composed from the
// same parts as the scripts (script and luaMain in scripts.go): the
// prelude once, at its top, with the names of KEYS and the common ARGV as
// its locals, then each script's main, and for each a registered function
// that sets those locals from its call's KEYS and ARGV, resets EXPIRED,
// and returns {EXPIRED, main's reply} as the script does. Redis runs one
// function at a time, so the shared locals are never seen half-set.
//
// Only the check is in the library, because functions behave differently
// on a full Redis: a script without a shebang (all of arbiter's) is
// refused at its first write that may add memory, and runs to the end
// once it has written, so a redemption, whose first write deletes the
// hold, still completes on a full Redis. A function without the allow-oom
// flag is refused before it starts, and one with it never is. A check
// writes nothing that frees memory, so refusing it whole on a full Redis
// is what the script did at its first write; TestStoreFull holds both.
//
// The library's name carries a digest of its code (arbiter_<12 hex>), so
// instances of two versions of arbiter on one Redis each call their own
// functions instead of replacing each other's. A library stays loaded
// after the last instance of its version is gone; FUNCTION DELETE removes
// it (README.md, Operations).
var functions = newLibrary(checkScript)

// library is the function library's name and code.
type library struct {
	name string
	src  string
}

// newLibrary composes the library of scs and names each script's function
// in it (luaScript.fn).
func newLibrary(scs ...*luaScript) library {
	keys, keyVals := keysBinding()
	common, commonVals := argsBinding(commonArgs{}, 1)
	var b strings.Builder
	b.WriteString("local " + strings.Join(keys, ", ") + "\n")
	b.WriteString("local " + strings.Join(common, ", ") + "\n")
	b.WriteString(luaCodec() + luaPrelude + "\n")
	for _, sc := range scs {
		b.WriteString(luaMain("main_"+sc.name, sc.args, sc.reply, sc.sections))
	}
	sum := sha1.Sum([]byte(b.String()))
	name := "arbiter_" + hex.EncodeToString(sum[:6])
	for _, sc := range scs {
		sc.fn = name + "_" + sc.name
		fmt.Fprintf(&b, "redis.register_function('%s', function(KEYS, ARGV)\n%s%sEXPIRED = 0\nlocal r = main_%s(KEYS, ARGV)\nreturn {EXPIRED, r}\nend)\n",
			sc.fn, luaAssign(keys, keyVals), luaAssign(common, commonVals), sc.name)
	}
	return library{name: name, src: "#!lua name=" + name + "\n" + b.String()}
}

// fnState is whether a Store calls functions: not known yet (it tries),
// loaded, or not available on this server (it runs scripts only).
type fnState int32

const (
	fnUnknown fnState = iota
	fnLoaded
	fnUnavailable
)

// functionState is a Store's fnState and the lock that makes one caller at
// a time load the library.
type functionState struct {
	state   atomic.Int32
	loading sync.Mutex
}

func (f *functionState) get() fnState  { return fnState(f.state.Load()) }
func (f *functionState) set(s fnState) { f.state.Store(int32(s)) }

// loadFunctions loads the library on every master (FUNCTION LOAD REPLACE:
// loading it again is harmless) and records the outcome. A server that
// has no functions or does not let this user load them is not an error:
// the check runs as a script there. Anything else is.
func (s *Store) loadFunctions(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Cmdable) error {
		return c.FunctionLoadReplace(ctx, functions.src).Err()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return load(ctx, m) })
	} else {
		err = load(ctx, s.rdb)
	}
	switch {
	case err == nil:
		s.fns.set(fnLoaded)
	case noFunctions(err):
		s.fns.set(fnUnavailable)
		return nil
	default:
		return fmt.Errorf("load function library %s: %w", functions.name, err)
	}
	return nil
}

// Functions reports whether the check runs as a Redis function (FCALL):
// true once the library is loaded, false on a server without functions
// (Redis before 7, the embedded miniredis, an ACL without FUNCTION) and
// before Load.
func (s *Store) Functions() bool { return s.fns.get() == fnLoaded }

// fcall calls sc's function. It returns nil, having sent nothing, when
// the server has no functions; and nil too when the server lacks the
// library (a master that joined or was flushed since Load), which it then
// loads again, so that the caller runs the script this once.
func (s *Store) fcall(ctx context.Context, sc *luaScript, keys []string, argv []any) *redis.Cmd {
	if sc.fn == "" || s.fns.get() == fnUnavailable {
		return nil
	}
	cmd := call(ctx, s.rdb, "fcall", sc.fn, keys, argv)
	err := cmd.Err()
	switch {
	case err == nil || !isReply(err):
		return cmd
	case noFunctions(err):
		s.fns.set(fnUnavailable)
		return nil
	case redis.HasErrorPrefix(err, "Function not found"):
		if s.fns.loading.TryLock() { // others run the script meanwhile
			_ = s.loadFunctions(ctx) // a failure leaves the state as it was: the next call tries again
			s.fns.loading.Unlock()
		}
		return nil
	}
	return cmd
}

// noFunctions reports whether err says the server has no functions for
// this client: an unknown command (Redis 6, miniredis) or an ACL refusal.
func noFunctions(err error) bool {
	return redis.HasErrorPrefix(err, "unknown command") || redis.HasErrorPrefix(err, "NOPERM")
}

func isReply(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}
