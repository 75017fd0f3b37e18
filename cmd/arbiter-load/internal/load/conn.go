package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// ConnClient returns a copy of c whose requests go over one keep-alive
// connection of its own, for one goroutine at a time: net/http's request
// writer and response reader on a net.Conn, without the Transport's pool
// and its two goroutines per connection, whose hand-offs cost the client
// more CPU than the request itself (BENCHMARKS.md, section 3). That is how
// redis-benchmark's and wrk's clients work, and what a closed loop sharing
// the machine with the server wants: the least CPU per request, left to
// the processes measured. Plain http:// only; timeout bounds each request
// (the connection's deadline), and so does the request's context. Unlike
// the Transport it never resends: a request on a connection the server
// closed while idle fails, and the next one dials again.
func (c *Client) ConnClient(timeout time.Duration) (*Client, error) {
	u, err := url.Parse(c.Base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("one-connection client: base URL %q: want http://host:port", c.Base)
	}
	cc := *c
	cc.HTTP = &http.Client{Transport: &connTransport{addr: u.Host, timeout: timeout}}
	return &cc, nil
}

// connTransport is an http.RoundTripper over one connection, dialled on
// first use and again after any error or a response that closes it. A
// response's body must be read to its end and closed before the next
// request (Client.Do does).
type connTransport struct {
	addr    string
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
}

func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.conn == nil {
		conn, err := net.DialTimeout("tcp", t.addr, t.timeout)
		if err != nil {
			return nil, err
		}
		t.conn, t.br, t.bw = conn, bufio.NewReader(conn), bufio.NewWriter(conn)
	}
	// A context that ends closes the connection, which ends the exchange
	// or the body's read in progress.
	conn := t.conn
	stop := context.AfterFunc(req.Context(), func() { conn.Close() })
	resp, err := t.exchange(req)
	if err != nil {
		stop()
		t.drop()
		if ctxErr := req.Context().Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, err
	}
	resp.Body = &connBody{ReadCloser: resp.Body, t: t, close: resp.Close, stop: stop}
	return resp, nil
}

func (t *connTransport) exchange(req *http.Request) (*http.Response, error) {
	if t.timeout > 0 {
		if err := t.conn.SetDeadline(time.Now().Add(t.timeout)); err != nil {
			return nil, err
		}
	}
	if err := req.Write(t.bw); err != nil {
		return nil, err
	}
	if err := t.bw.Flush(); err != nil {
		return nil, err
	}
	return http.ReadResponse(t.br, req)
}

func (t *connTransport) drop() {
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

// connBody is a response body on the transport's connection: at Close, a
// body not read to its end (or a response that closes the connection)
// drops the connection, since the next response could not be found on it.
type connBody struct {
	io.ReadCloser
	t     *connTransport
	close bool        // the response closes the connection
	stop  func() bool // stops the context's watch; false once it closed the connection
	eof   bool
}

func (b *connBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *connBody) Close() error {
	err := b.ReadCloser.Close()
	if watched := b.stop(); !watched || !b.eof || b.close || err != nil {
		b.t.drop()
	}
	return err
}

// CloseIdleConnections closes the connection (http.Client.CloseIdleConnections).
func (t *connTransport) CloseIdleConnections() { t.drop() }
