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
	"time"

	"github.com/redis/go-redis/v9"
)

// The hot scripts run as Redis functions (FCALL) where the server has
// them (Redis 7+), and as scripts (EVALSHA) elsewhere. A script is one Lua
// chunk that Redis runs whole on every call, so every call first defines
// the prelude's functions again, which costs more than the work of a
// minimal hold (BENCHMARKS.md has the figures). A function library is run
// once, when it is loaded; FCALL then
// only calls the function it registered. The library is composed from the
// same parts as the scripts (script and luaMain in scripts.go): the
// prelude once, at its top, with the names of KEYS and the common ARGV as
// its locals, then each script's main, and for each a registered function
// that sets those locals from its call's KEYS and ARGV, resets EXPIRED,
// and returns {EXPIRED, main's reply} as the script does. Redis runs one
// function at a time, so the shared locals are never seen half-set.
//
// The library holds the hot scripts: the check and the two redemptions.
// Functions behave differently on a full Redis: a script without a
// shebang (all of arbiter's) is refused at its first write that may add
// memory, and runs to the end once it has written, so a redemption, whose
// first write deletes the hold, still completes on a full Redis, and a
// check that writes nothing (a replay) still answers. A function without
// the allow-oom flag is refused before it starts (one with it would never
// be). That refusal proves the function did not run, so the script then
// answers the call (fcall), and a full Redis behaves exactly as it does
// for scripts: TestStoreFull holds it, for one extra round trip while
// Redis is full.
//
// The library's name carries a digest of its code (arbiter_<12 hex>), so
// instances of two versions of arbiter on one Redis each call their own
// functions instead of replacing each other's. A library stays loaded
// after the last instance of its version is gone; FUNCTION DELETE removes
// it (docs/operations.md, Functions).
var functions = newLibrary(checkScript, redeemTokenScript, redeemOTPScript)

// library is the function library's name and code.
type library struct {
	name string
	src  string
}

// newLibrary composes the library of scs and names each script's function
// in it (luaScript.fn). The name is a digest of the whole library, the
// registrations included, written with a placeholder where the name goes.
func newLibrary(scs ...*luaScript) library {
	const placeholder = "arbiter_NAME"
	keys, keyVals := keysBinding()
	common, commonVals := argsBinding(commonArgs{}, 1)
	var b strings.Builder
	b.WriteString("local " + strings.Join(keys, ", ") + "\n")
	b.WriteString("local " + strings.Join(common, ", ") + "\n")
	b.WriteString(luaConstants() + luaCodec() + luaPrelude + "\n" + luaRules + "\n")
	for _, sc := range scs {
		b.WriteString(luaMain("main_"+sc.name, sc.args, sc.reply, sc.sections))
	}
	for _, sc := range scs {
		fmt.Fprintf(&b, "redis.register_function('%s_%s', function(KEYS, ARGV)\n%s%sEXPIRED = 0\nlocal r = main_%s(KEYS, ARGV)\nreturn {EXPIRED, r}\nend)\n",
			placeholder, sc.name, luaAssign(keys, keyVals), luaAssign(common, commonVals), sc.name)
	}
	src := "#!lua name=" + placeholder + "\n" + b.String()
	sum := sha1.Sum([]byte(src))
	name := "arbiter_" + hex.EncodeToString(sum[:6])
	for _, sc := range scs {
		sc.fn = name + "_" + sc.name
	}
	return library{name: name, src: strings.ReplaceAll(src, placeholder, name)}
}

// functionState is whether a Store calls functions, and the lock that
// makes one goroutine at a time load the library.
type functionState struct {
	loaded atomic.Bool
	// retryAt, when set, is when to try FCALL again (Unix ns) after the
	// server said it has none for this client: an upgrade to Redis 7 or
	// an ACL change is picked up within fnRetry, for one refused call.
	retryAt atomic.Int64
	loading sync.Mutex
}

// fnRetry is how long a Store runs the check as a script after the server
// refused FCALL or FUNCTION LOAD as such, before it tries again.
const fnRetry = time.Minute

// fnLoadTimeout bounds a reload of the library after a master was found
// without it.
const fnLoadTimeout = 5 * time.Second

// loadFunctions loads the library on every master (FUNCTION LOAD REPLACE:
// loading it again is harmless) and records the outcome. A server that
// has no functions or does not let this user load them is not an error:
// the scripts answer there. Anything else is.
func (s *Store) loadFunctions(ctx context.Context) error {
	err := eachMaster(ctx, s.rdb, func(ctx context.Context, node redis.Cmdable, _ string) error {
		return node.FunctionLoadReplace(ctx, functions.src).Err()
	})
	switch {
	case err == nil:
		s.fns.retryAt.Store(0)
		s.fns.loaded.Store(true)
	case refused(err, "function"):
		s.fns.loaded.Store(false)
		s.fns.retryAt.Store(time.Now().Add(fnRetry).UnixNano())
	default:
		return fmt.Errorf("load function library %s: %w", functions.name, err)
	}
	return nil
}

// reloadFunctions loads the library again, in the background, after a
// master answered FCALL with "Function not found" (it joined, or was
// flushed, after Load): one goroutine at a time, on a fresh slot map, so
// the request that found out pays nothing for it.
func (s *Store) reloadFunctions() {
	if !s.fns.loading.TryLock() {
		return // another goroutine is loading it
	}
	go func() {
		defer s.fns.loading.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), fnLoadTimeout)
		defer cancel()
		if cc, ok := s.rdb.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx)
		}
		_ = s.loadFunctions(ctx) // a failure leaves the state as it was: the next miss tries again
	}()
}

// Functions reports whether the hot scripts run as Redis functions (FCALL):
// true once the library is loaded, false on a server without functions
// (Redis before 7, the embedded miniredis, an ACL without FUNCTION) and
// before Load.
func (s *Store) Functions() bool { return s.fns.loaded.Load() && s.fns.retryAt.Load() == 0 }

// fcall calls sc's function. It returns nil, having sent nothing, when
// the server has no functions for this client; and nil too when FCALL's
// reply proves the function did not run and the script should answer
// instead:
//
//   - FCALL itself refused (unknown command, an ACL without +fcall): the
//     script runs, and FCALL is tried again after fnRetry;
//   - "Function not found" (a master that joined or was flushed since
//     Load): the script runs, and the library is loaded again;
//   - OOM: Redis refuses a function without allow-oom before it starts
//     on a full Redis, where a script is refused only at its first write
//     that may add memory, so a check that writes nothing (the replay of a
//     delivered check, an idempotency error, need_rating) still answers.
//
// Any other error is the function's: it may have run, so it is returned,
// never followed by the script.
func (s *Store) fcall(ctx context.Context, sc *luaScript, keys []string, argv []any) *redis.Cmd {
	if !s.useFunction(sc) {
		return nil
	}
	cmd := call(ctx, s.sender(), "fcall", sc.fn, keys, argv)
	if s.scriptInstead(cmd.Err()) {
		return nil
	}
	return cmd
}

// useFunction reports whether sc is sent as FCALL: it is in the library,
// and the server did not just refuse FCALL.
func (s *Store) useFunction(sc *luaScript) bool {
	if sc.fn == "" {
		return false
	}
	at := s.fns.retryAt.Load()
	return at == 0 || time.Now().UnixNano() >= at
}

// scriptInstead reports whether err, FCALL's reply, proves the function
// did not run, so that the script must answer instead (see fcall), and
// acts on what it says of the server: FCALL refused, try again after
// fnRetry; the library missing, load it again.
func (s *Store) scriptInstead(err error) bool {
	switch {
	case err == nil || !isReply(err):
		return false
	case refused(err, "fcall"):
		s.fns.loaded.Store(false)
		s.fns.retryAt.Store(time.Now().Add(fnRetry).UnixNano())
		return true
	case redis.HasErrorPrefix(err, "Function not found"):
		s.reloadFunctions()
		return true
	case redis.HasErrorPrefix(err, "OOM"):
		return true
	}
	return false
}

// refused reports whether err is the server refusing the command cmd
// itself (fcall, or function for FUNCTION LOAD): unknown (Redis 6,
// miniredis) or not allowed by the ACL. A refusal of a command that a
// function calls inside names that command instead, and is not one.
func refused(err error, cmd string) bool {
	msg := strings.ToLower(err.Error())
	switch {
	case redis.HasErrorPrefix(err, "unknown command"):
		return strings.Contains(msg, "`"+cmd+"`") || strings.Contains(msg, "'"+cmd+"'")
	case redis.HasErrorPrefix(err, "NOPERM"):
		return strings.Contains(msg, "'"+cmd+"'") || strings.Contains(msg, "'"+cmd+"|")
	}
	return false
}

func isReply(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}
