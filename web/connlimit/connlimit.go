// Package connlimit caps the connections an http.Server keeps open, and
// at the cap makes room by closing connections that do no work (idle
// keep-alive connections, and connections that have sent no request)
// rather than refusing the ones that do.
//
// A cap that only refuses, or blocks accepting (golang.org/x/net/netutil's
// LimitListener), lets idle connections starve active work: a few hundred
// idle keep-alive connections under a small open-file limit stop every new
// request until their idle timeout. Here an incoming connection is refused
// only when every open one is busy with a request: the server is then
// really full.
package connlimit

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultNewGrace is how long a new connection may stay silent (no
// request yet) before it may be closed to make room.
const DefaultNewGrace = time.Second

// Reasons given to Limiter.OnClose: which connection was closed for the cap.
const (
	ClosedSilent   = "silent"   // a connection that sent no request within NewGrace
	ClosedIdle     = "idle"     // a keep-alive connection between requests
	ClosedNew      = "new"      // a connection within NewGrace, the oldest: a flood of new ones
	ClosedIncoming = "incoming" // the connection just accepted: every other one is busy
)

// Limiter tracks an http.Server's connections through its ConnState hook
// (set Server.ConnState to Limiter.ConnState) and keeps at most Max open.
// The zero value is not usable: Max must be positive. Safe for concurrent
// use.
type Limiter struct {
	Max      int
	NewGrace time.Duration    // default DefaultNewGrace
	Now      func() time.Time // default time.Now
	// OnClose, when set, is called with the reason for every connection
	// closed for the cap (the metric).
	OnClose func(reason string)

	mu    sync.Mutex
	conns map[net.Conn]*tracked
	open  int // tracked connections not closing
}

type tracked struct {
	state   http.ConnState
	since   time.Time // when it entered state
	closing bool      // closed for the cap, its StateClosed not seen yet
}

// Open returns the number of open connections, those being closed for the
// cap excluded.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Idle returns the number of open connections idle between requests.
func (l *Limiter) Idle() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, t := range l.conns {
		if !t.closing && t.state == http.StateIdle {
			n++
		}
	}
	return n
}

// ConnState is the http.Server.ConnState hook. net/http calls it with
// StateNew in its accept loop, before the connection serves anything: a
// connection over the cap is closed there, before it costs more than its
// file descriptor.
func (l *Limiter) ConnState(c net.Conn, s http.ConnState) {
	var victim net.Conn
	var reason string
	l.mu.Lock()
	if l.conns == nil {
		l.conns = map[net.Conn]*tracked{}
	}
	now := l.now()
	switch s {
	case http.StateNew:
		t := &tracked{state: s, since: now}
		l.conns[c] = t
		if l.open < l.Max {
			l.open++
			break
		}
		// At the cap: the new connection takes a victim's slot, or is
		// itself the victim; either way the count stays.
		if victim, reason = l.pickLocked(now, c); victim != nil {
			l.conns[victim].closing = true
		} else {
			t.closing, victim, reason = true, c, ClosedIncoming
		}
	case http.StateActive, http.StateIdle:
		if t, ok := l.conns[c]; ok {
			t.state, t.since = s, now
		}
	case http.StateHijacked, http.StateClosed:
		if t, ok := l.conns[c]; ok {
			delete(l.conns, c)
			if !t.closing {
				l.open--
			}
		}
	}
	l.mu.Unlock()
	if victim != nil {
		if l.OnClose != nil {
			l.OnClose(reason)
		}
		// Before returning, so the new connection is never served over
		// the cap; outside the lock, as closing a TLS connection writes
		// its close_notify.
		_ = victim.Close()
	}
}

// pickLocked chooses the connection to close to make room, oldest first
// within each kind, in this order: a new connection silent for NewGrace
// or longer (dead, or slow on purpose); a keep-alive connection idle
// between requests (its client dials again); a new connection within its
// grace (under a flood of new connections, first in first out, so one
// that sends its request promptly is served). Nil when every connection
// is busy with a request.
func (l *Limiter) pickLocked(now time.Time, incoming net.Conn) (net.Conn, string) {
	grace := l.NewGrace
	if grace <= 0 {
		grace = DefaultNewGrace
	}
	var best net.Conn
	var bestRank int
	var bestSince time.Time
	for c, t := range l.conns {
		rank := 0
		switch {
		case t.closing || c == incoming || t.state == http.StateActive:
			continue
		case t.state == http.StateNew && now.Sub(t.since) >= grace:
			rank = 3
		case t.state == http.StateIdle:
			rank = 2
		case t.state == http.StateNew:
			rank = 1
		}
		if best == nil || rank > bestRank || rank == bestRank && t.since.Before(bestSince) {
			best, bestRank, bestSince = c, rank, t.since
		}
	}
	return best, [...]string{"", ClosedNew, ClosedIdle, ClosedSilent}[bestRank]
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}
