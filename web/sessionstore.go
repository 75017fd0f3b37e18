package web

import (
	"context"
	"sync"
	"time"
)

// SessionStore keeps the branch UI's sessions and its sign-in failure
// counts. With a store every instance shares (redissessions.Store), a
// sign-in on one arbiter instance is valid on all of them, survives
// restarts and deploys, and sign-out or the throttle apply everywhere.
//
// Keys come from package web: a session's key is the hex SHA-256 of the
// cookie's value, so a store never sees a usable cookie; a throttle's key
// is "user:<lowercased username>" or "addr:<client address>". A session's
// value is opaque to the store (web encodes it). Times are web's clock
// (Config.Now), so every check on read agrees with the tests' clock.
// Errors are the store's (validation.ReasonUnavailable for a Redis that
// does not answer); a missing or expired session is not an error.
type SessionStore interface {
	// CreateSession stores value under key. It lives while it is touched
	// at least every idle, and never past expires.
	CreateSession(ctx context.Context, key string, value []byte, now time.Time, idle time.Duration, expires time.Time) error
	// TouchSession returns the value of the live session under key and
	// restarts its idle time; ok is false when there is none, or when its
	// idle time or its expiry has passed at now (it is then deleted).
	TouchSession(ctx context.Context, key string, now time.Time, idle time.Duration) (value []byte, ok bool, err error)
	// DeleteSession ends the session under key; an unknown key is no error.
	DeleteSession(ctx context.Context, key string) error

	// SignInFailures returns the failures counted under key in its current
	// window and when that window ends (zero values when none).
	SignInFailures(ctx context.Context, key string) (count int, until time.Time, err error)
	// ReserveSignIn counts one sign-in attempt under key, atomically,
	// unless max attempts are already counted in the current window: then
	// admitted is false and nothing changes. The first attempt, or the
	// first after the window ended, opens a window of length window at
	// now. It returns the count and the window's end, as SignInFailures
	// does. An attempt counts as a failure from before its password is
	// compared, so parallel attempts cannot all pass the limit.
	ReserveSignIn(ctx context.Context, key string, now time.Time, window time.Duration, max int) (count int, until time.Time, admitted bool, err error)
	// ReleaseSignIn takes back one attempt ReserveSignIn counted under key
	// (one that turned out not to be a failure).
	ReleaseSignIn(ctx context.Context, key string) error
	// ResetSignIn forgets the failures under key.
	ResetSignIn(ctx context.Context, key string) error
}

// memorySessions is the SessionStore of Config's zero value: this process's
// memory. A restart then signs every agent out and several instances do
// not share sessions; arbiter itself always runs with redissessions.Store.
type memorySessions struct {
	mu       sync.Mutex
	sessions map[string]memorySession
	strikes  map[string]memoryStrikes
}

type memorySession struct {
	value         []byte
	seen, expires time.Time
	idle          time.Duration
}

type memoryStrikes struct {
	count int
	until time.Time
}

// maxMemoryEntries bounds the memory an attacker cycling usernames or
// addresses can make the in-memory store use; past it, stale entries are
// swept.
const maxMemoryEntries = 10000

var _ SessionStore = (*memorySessions)(nil)

func newMemorySessions() *memorySessions {
	return &memorySessions{sessions: map[string]memorySession{}, strikes: map[string]memoryStrikes{}}
}

func (m *memorySessions) CreateSession(_ context.Context, key string, value []byte, now time.Time, idle time.Duration, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sessions { // sweep here: sign-ins are rare, the map small
		if s.dead(now) {
			delete(m.sessions, k)
		}
	}
	m.sessions[key] = memorySession{value: append([]byte(nil), value...), seen: now, expires: expires, idle: idle}
	return nil
}

func (s memorySession) dead(now time.Time) bool {
	return now.Sub(s.seen) >= s.idle || !now.Before(s.expires)
}

func (m *memorySessions) TouchSession(_ context.Context, key string, now time.Time, idle time.Duration) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[key]
	if !ok {
		return nil, false, nil
	}
	s.idle = idle
	if s.dead(now) {
		delete(m.sessions, key)
		return nil, false, nil
	}
	s.seen = now
	m.sessions[key] = s
	return s.value, true, nil
}

func (m *memorySessions) DeleteSession(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, key)
	return nil
}

func (m *memorySessions) SignInFailures(_ context.Context, key string) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.strikes[key]
	return s.count, s.until, nil
}

func (m *memorySessions) ReserveSignIn(_ context.Context, key string, now time.Time, window time.Duration, max int) (int, time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.strikes[key]
	if ok && now.Before(s.until) && s.count >= max {
		return s.count, s.until, false, nil
	}
	if !ok || !now.Before(s.until) {
		if len(m.strikes) >= maxMemoryEntries {
			for k, e := range m.strikes {
				if !now.Before(e.until) {
					delete(m.strikes, k)
				}
			}
		}
		s = memoryStrikes{until: now.Add(window)}
	}
	s.count++
	m.strikes[key] = s
	return s.count, s.until, true, nil
}

func (m *memorySessions) ReleaseSignIn(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.strikes[key]; ok && s.count > 0 {
		s.count--
		m.strikes[key] = s
	}
	return nil
}

func (m *memorySessions) ResetSignIn(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.strikes, key)
	return nil
}
