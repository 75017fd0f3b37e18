package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sessions keeps the branch UI's sessions and sign-in failure counts in
// Redis, so that every arbiter instance on the same Redis shares them: a
// sign-in on one instance is valid on all, survives restarts, and a
// sign-out or a throttle holds everywhere. It is a web.SessionStore (the
// interface is web's; package cmd wires the two).
//
// Keys (each operation touches one key, so a cluster needs no hash tags):
//
//	arb:session:<K>    hash  v (web's encoding: agent, branch, CSRF token, created, expires),
//	                         seen and exp (ms); K is the hex SHA-256 of the cookie's id.
//	                         PEXPIRE = the idle time, never past exp
//	arb:signin:<key>   hash  n (failed sign-ins, those in flight included), until (ms, the window's end); key is
//	                         user:<username> or addr:<address>. PEXPIRE = the window
//
// Errors are validation errors of reason unavailable (or store_full for a
// full Redis), as the Store's are.
type Sessions struct {
	rdb  redis.UniversalClient
	opts SessionOptions
}

// SessionOptions configure Sessions; the zero value is fine.
type SessionOptions struct {
	// Observe, when set, is called after every session script with its
	// name (session_create, session_touch, signin_fail, signin_release), its
	// duration and
	// its error, as Options.Observe is for the Store's scripts.
	Observe func(script string, d time.Duration, err error)
}

// NewSessions returns the session store on rdb.
func NewSessions(rdb redis.UniversalClient, opts SessionOptions) *Sessions {
	return &Sessions{rdb: rdb, opts: opts}
}

func sessionKey(key string) string { return "arb:session:" + key }
func signInKey(key string) string  { return "arb:signin:" + key }

// The session scripts are standalone: not wrapped in the customer prelude,
// whose KEYS they do not have.
var (
	//go:embed lua/session_create.lua
	luaSessionCreate string
	//go:embed lua/session_touch.lua
	luaSessionTouch string
	//go:embed lua/signin_fail.lua
	luaSignInFail string
	//go:embed lua/signin_release.lua
	luaSignInRelease string

	sessionCreateScript = &luaScript{Script: redis.NewScript(luaSessionCreate), src: luaSessionCreate}
	sessionTouchScript  = &luaScript{Script: redis.NewScript(luaSessionTouch), src: luaSessionTouch}
	signInFailScript    = &luaScript{Script: redis.NewScript(luaSignInFail), src: luaSignInFail}
	signInReleaseScript = &luaScript{Script: redis.NewScript(luaSignInRelease), src: luaSignInRelease}
)

// Load sends the session scripts to the server (SCRIPT LOAD; on a cluster,
// to every master), so that each later call is one EVALSHA.
func (s *Sessions) Load(ctx context.Context) error {
	for name, sc := range map[string]*luaScript{"session_create": sessionCreateScript, "session_touch": sessionTouchScript, "signin_fail": signInFailScript, "signin_release": signInReleaseScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load script %s: %w", name, err)
		}
	}
	return nil
}

// eval runs a script once (EVALSHA, EVAL when the server lacks it), never
// resent after an ambiguous failure, as Store.eval does (evalOnce): a
// resent failure count would count twice.
func (s *Sessions) eval(ctx context.Context, name string, sc *luaScript, key string, argv ...any) *redis.Cmd {
	start := time.Now()
	cmd := evalOnce(ctx, s.rdb, sc, []string{key}, argv)
	if s.opts.Observe != nil {
		err := cmd.Err()
		if errors.Is(err, redis.Nil) {
			err = nil // no live session is an answer, not a failure
		}
		s.opts.Observe(name, time.Since(start), err)
	}
	return cmd
}

// sessionCreate is session_create.lua's ARGV.
type sessionCreate struct {
	value        []byte
	now, expires time.Time
	idle         time.Duration
}

func (a sessionCreate) argv() []any {
	return []any{a.value, a.now.UnixMilli(), a.idle.Milliseconds(), a.expires.UnixMilli()}
}

// CreateSession stores value under key, living idle after each touch and
// never past expires (the key's TTL is the shorter of the two).
func (s *Sessions) CreateSession(ctx context.Context, key string, value []byte, now time.Time, idle time.Duration, expires time.Time) error {
	args := sessionCreate{value: value, now: now, expires: expires, idle: idle}
	if err := s.eval(ctx, "session_create", sessionCreateScript, sessionKey(key), args.argv()...).Err(); err != nil {
		return unavailable("session_create", err)
	}
	return nil
}

// sessionTouch is session_touch.lua's ARGV.
type sessionTouch struct {
	now  time.Time
	idle time.Duration
}

func (a sessionTouch) argv() []any { return []any{a.now.UnixMilli(), a.idle.Milliseconds()} }

// TouchSession returns the live session's value and restarts its idle time
// (never past its expiry), in one script; ok is false when the session is
// unknown, idle for idle or more, or expired at now (then it is deleted).
func (s *Sessions) TouchSession(ctx context.Context, key string, now time.Time, idle time.Duration) ([]byte, bool, error) {
	args := sessionTouch{now: now, idle: idle}
	v, err := s.eval(ctx, "session_touch", sessionTouchScript, sessionKey(key), args.argv()...).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, unavailable("session_touch", err)
	}
	return []byte(v), true, nil
}

// DeleteSession ends the session under key on every instance at once.
func (s *Sessions) DeleteSession(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, sessionKey(key)).Err(); err != nil {
		return unavailable("session_delete", err)
	}
	return nil
}

// SignInFailures returns the failures under key in its window and the
// window's end; zero values when there are none.
func (s *Sessions) SignInFailures(ctx context.Context, key string) (int, time.Time, error) {
	vals, err := s.rdb.HMGet(ctx, signInKey(key), "n", "until").Result()
	if err != nil {
		return 0, time.Time{}, unavailable("signin_read", err)
	}
	n, _ := vals[0].(string)
	until, _ := vals[1].(string)
	if n == "" || until == "" {
		return 0, time.Time{}, nil
	}
	return parseStrikes("signin_read", n, until)
}

// signInFail is signin_fail.lua's ARGV.
type signInFail struct {
	now    time.Time
	window time.Duration
	max    int
}

func (a signInFail) argv() []any { return []any{a.now.UnixMilli(), a.window.Milliseconds(), a.max} }

// signInFailReply is signin_fail.lua's reply: {count, until_ms, admitted}.
type signInFailReply struct {
	count    int64
	untilMs  int64
	admitted bool
}

func decodeSignInFail(res []int64) (signInFailReply, error) {
	if len(res) != 3 {
		return signInFailReply{}, fmt.Errorf("redis signin_fail: malformed reply %v", res)
	}
	return signInFailReply{count: res[0], untilMs: res[1], admitted: res[2] == 1}, nil
}

// ReserveSignIn counts one attempt under key, in one script, unless max
// are already counted in the window; the first attempt (or the first after
// the window ended) opens a window at now.
func (s *Sessions) ReserveSignIn(ctx context.Context, key string, now time.Time, window time.Duration, max int) (int, time.Time, bool, error) {
	args := signInFail{now: now, window: window, max: max}
	res, err := s.eval(ctx, "signin_fail", signInFailScript, signInKey(key), args.argv()...).Int64Slice()
	if err != nil {
		return 0, time.Time{}, false, unavailable("signin_fail", err)
	}
	r, err := decodeSignInFail(res)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	return int(r.count), time.UnixMilli(r.untilMs), r.admitted, nil
}

// ReleaseSignIn takes back one attempt ReserveSignIn counted under key.
func (s *Sessions) ReleaseSignIn(ctx context.Context, key string) error {
	if err := s.eval(ctx, "signin_release", signInReleaseScript, signInKey(key)).Err(); err != nil {
		return unavailable("signin_release", err)
	}
	return nil
}

// ResetSignIn forgets the failures under key.
func (s *Sessions) ResetSignIn(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, signInKey(key)).Err(); err != nil {
		return unavailable("signin_reset", err)
	}
	return nil
}

func parseStrikes(name, n, until string) (int, time.Time, error) {
	count, err1 := strconv.Atoi(n)
	ms, err2 := strconv.ParseInt(until, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, time.Time{}, fmt.Errorf("redis %s: %w", name, err)
	}
	return count, time.UnixMilli(ms), nil
}
