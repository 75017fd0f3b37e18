// Package redissessions keeps the branch UI's sessions and sign-in
// failure counts in Redis: a web.SessionStore that every arbiter instance
// on the same Redis shares, so a sign-in on one instance is valid on all
// and survives restarts, and a sign-out or a throttle holds everywhere.
// The customer data lives apart, in validation/redisstore, whose script
// runner (redisstore.Script) these scripts go through so that none is
// resent after its reply was lost.
//
// # Key layout
//
// Each key stands alone, outside every customer, and each operation
// touches one key, so a cluster needs no hash tags:
//
//	arb:session:<K>    hash  v (web's encoding: agent, branch, CSRF token, created, expires),
//	                         seen and exp (ms); K is the hex SHA-256 of the cookie's id.
//	                         PEXPIRE = the idle time, never past exp
//	arb:signin:<key>   hash  n (failed sign-ins, those in flight included), until (ms, the window's end); key is
//	                         user:<username> or addr:<address>. PEXPIRE = the window
//
// The scripts (lua/*.lua) are standalone: not wrapped in the customer
// prelude, whose KEYS they do not have.
package redissessions

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation/redisstore"
)

// Store is the session store on Redis. It implements web.SessionStore (the
// interface is web's; package cmd wires the two). Its errors are
// validation errors of reason unavailable (or store_full for a full
// Redis), as the customer store's are.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
}

// Options configure a Store; the zero value is fine.
type Options struct {
	// Observe, when set, is called after every session script with its
	// name (session_create, session_touch, signin_fail, signin_release),
	// its duration and its error, as redisstore.Options.Observe is for
	// the customer store's scripts.
	Observe func(script string, d time.Duration, err error)
}

// New returns the session store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	return &Store{rdb: rdb, opts: opts}
}

func sessionKey(key string) string { return "arb:session:" + key }
func signInKey(key string) string  { return "arb:signin:" + key }

var (
	//go:embed lua/session_create.lua
	luaSessionCreate string
	//go:embed lua/session_touch.lua
	luaSessionTouch string
	//go:embed lua/signin_fail.lua
	luaSignInFail string
	//go:embed lua/signin_release.lua
	luaSignInRelease string

	sessionCreateScript = redisstore.NewScript("session_create", luaSessionCreate)
	sessionTouchScript  = redisstore.NewScript("session_touch", luaSessionTouch)
	signInFailScript    = redisstore.NewScript("signin_fail", luaSignInFail)
	signInReleaseScript = redisstore.NewScript("signin_release", luaSignInRelease)
)

// Load sends the session scripts to the server (SCRIPT LOAD; on a cluster,
// to every master), so that each later call is one EVALSHA.
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range []*redisstore.Script{sessionCreateScript, sessionTouchScript, signInFailScript, signInReleaseScript} {
		if err := sc.Load(ctx, s.rdb); err != nil {
			return err
		}
	}
	return nil
}

// eval runs a script once: a resent failure count would count twice.
func (s *Store) eval(ctx context.Context, sc *redisstore.Script, key string, argv ...any) *redis.Cmd {
	start := time.Now()
	cmd := sc.Run(ctx, s.rdb, []string{key}, argv...)
	if s.opts.Observe != nil {
		err := cmd.Err()
		if errors.Is(err, redis.Nil) {
			err = nil // no live session is an answer, not a failure
		}
		s.opts.Observe(sc.Name(), time.Since(start), err)
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
func (s *Store) CreateSession(ctx context.Context, key string, value []byte, now time.Time, idle time.Duration, expires time.Time) error {
	args := sessionCreate{value: value, now: now, expires: expires, idle: idle}
	if err := s.eval(ctx, sessionCreateScript, sessionKey(key), args.argv()...).Err(); err != nil {
		return redisstore.CallError("session_create", err)
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
func (s *Store) TouchSession(ctx context.Context, key string, now time.Time, idle time.Duration) ([]byte, bool, error) {
	args := sessionTouch{now: now, idle: idle}
	v, err := s.eval(ctx, sessionTouchScript, sessionKey(key), args.argv()...).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, redisstore.CallError("session_touch", err)
	}
	return []byte(v), true, nil
}

// DeleteSession ends the session under key on every instance at once.
func (s *Store) DeleteSession(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, sessionKey(key)).Err(); err != nil {
		return redisstore.CallError("session_delete", err)
	}
	return nil
}

// SignInFailures returns the failures under key in its window and the
// window's end; zero values when there are none.
func (s *Store) SignInFailures(ctx context.Context, key string) (int, time.Time, error) {
	vals, err := s.rdb.HMGet(ctx, signInKey(key), "n", "until").Result()
	if err != nil {
		return 0, time.Time{}, redisstore.CallError("signin_read", err)
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
func (s *Store) ReserveSignIn(ctx context.Context, key string, now time.Time, window time.Duration, max int) (int, time.Time, bool, error) {
	args := signInFail{now: now, window: window, max: max}
	res, err := s.eval(ctx, signInFailScript, signInKey(key), args.argv()...).Int64Slice()
	if err != nil {
		return 0, time.Time{}, false, redisstore.CallError("signin_fail", err)
	}
	r, err := decodeSignInFail(res)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	return int(r.count), time.UnixMilli(r.untilMs), r.admitted, nil
}

// ReleaseSignIn takes back one attempt ReserveSignIn counted under key.
func (s *Store) ReleaseSignIn(ctx context.Context, key string) error {
	if err := s.eval(ctx, signInReleaseScript, signInKey(key)).Err(); err != nil {
		return redisstore.CallError("signin_release", err)
	}
	return nil
}

// ResetSignIn forgets the failures under key.
func (s *Store) ResetSignIn(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, signInKey(key)).Err(); err != nil {
		return redisstore.CallError("signin_reset", err)
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
