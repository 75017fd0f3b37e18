package redistest

import (
	"net"
	"sync"
	"testing"
)

// Link is a TCP proxy a test puts between two parties — a replica and its
// master, arbiter and Redis — to break the network between them the way a
// partition does, which a signal to either process cannot: a SIGSTOPped
// replica still receives into its kernel buffer and catches up on SIGCONT,
// so the write a test meant to lose arrives after all.
//
// While the link is stalled no byte crosses it in either direction and no
// side sees an error: what was read waits in the proxy. Heal delivers it.
// Cut closes every connection through the link and drops what waited, as a
// partition that ends in a failover does; new connections are accepted
// (and stalled, if the link still is).
type Link struct {
	// Addr is where the proxied party connects instead of the target:
	// 127.0.0.1:<port>.
	Addr string
	// Port is Addr's port.
	Port int

	target string
	ln     net.Listener

	mu      sync.Mutex
	open    chan struct{} // closed while the link passes bytes
	stalled bool
	conns   map[net.Conn]struct{}
	closed  bool
}

// StartLink starts a link to target (host:port) on a free loopback port,
// closed when the test ends.
func StartLink(tb testing.TB, target string) *Link {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: link to %s: %v", target, err)
	}
	open := make(chan struct{})
	close(open)
	l := &Link{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port, target: target, ln: ln,
		open: open, conns: map[net.Conn]struct{}{}}
	go l.accept()
	tb.Cleanup(l.Close)
	return l
}

// Stall stops every byte through the link until Heal or Cut.
func (l *Link) Stall() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stalled {
		l.stalled = true
		l.open = make(chan struct{})
	}
}

// Heal lets bytes through again, those that waited first.
func (l *Link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stalled {
		l.stalled = false
		close(l.open)
	}
}

// Cut closes every connection through the link; what waited is lost. The
// link keeps accepting, in its current state (stalled or not).
func (l *Link) Cut() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// Close cuts the link and stops accepting.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	l.Cut()
	l.Heal()
}

func (l *Link) gate() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// track records c as open through the link; false if the link is closed.
func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Link) accept() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !l.track(in) || !l.track(out) {
			_ = in.Close()
			_ = out.Close()
			return
		}
		go l.pipe(in, out)
		go l.pipe(out, in)
	}
}

// pipe copies src to dst, holding each read while the link is stalled.
// When either side ends, both are closed.
func (l *Link) pipe(src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-l.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or a cut: the other direction ends too
			return
		}
	}
}
