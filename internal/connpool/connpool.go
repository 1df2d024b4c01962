// Package connpool is the API clients' HTTP/1.1 transport for thousands of
// hosts. Each RetailCRM account is a host of its own, polled once an
// interval, so the cheapest poll reuses the connection of the previous one:
// no TCP connect, no TLS handshake. net/http's Transport keeps an idle
// connection with two goroutines and two 4 KB buffers (about 26 KB of Go
// memory measured, 55 KB of RSS), which at 10,000 accounts is more than the
// rest of the daemon. Here an idle connection is only its socket and TLS
// state (about 10 KB): the buffers are pooled and taken for the length of
// a request, and no goroutine watches an idle connection (one timer per
// pool closes those idle past IdleTimeout); one that the server closed in
// the meantime is found at its next use and the request is sent again on
// a new connection.
//
// Only requests that can be sent twice are served here: GET and HEAD
// without a body, not through a proxy. Everything else goes to Fallback
// (net/http), unchanged.
package connpool

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Options shape a Transport.
type Options struct {
	// TLS is the configuration of https connections; ServerName is set per
	// host. Its ClientSessionCache, shared by all hosts, makes a new
	// connection resume its host's session.
	TLS *tls.Config
	// Dial opens connections; nil dials as net/http does.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Proxy says which requests go through a proxy (net/http's
	// ProxyFromEnvironment in production): those go to Fallback.
	Proxy func(*http.Request) (*url.URL, error)
	// Fallback serves the requests this transport does not.
	Fallback http.RoundTripper
	// MaxIdle bounds the idle connections of all hosts: the memory budget.
	// A connection given back when the pool is full is closed, so that the
	// hosts already kept stay kept (at 10,000 hosts polled in turn, evicting
	// the least recently used would evict exactly the next one needed).
	MaxIdle int
	// IdleTimeout is how long an idle connection is kept.
	IdleTimeout time.Duration
	// Now is the clock of idle times; nil is time.Now.
	Now func() time.Time
}

// maxHeaderBytes bounds a response's status line and headers, as
// net/http's Transport does by default.
const maxHeaderBytes = 1 << 20

// Transport is an http.RoundTripper; it is safe for concurrent use.
type Transport struct {
	o Options

	mu      sync.Mutex
	idle    map[string][]*conn // by host:port, most recently used last
	n       int                // idle connections in all hosts
	sweeper *time.Timer        // armed while connections are idle
}

// New returns a Transport; see Options.
func New(o Options) *Transport {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TLS == nil {
		o.TLS = &tls.Config{}
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		o.Dial = d.DialContext
	}
	return &Transport{o: o, idle: map[string][]*conn{}}
}

// conn is one connection and the reader that limits how much of a
// response's head it may read.
type conn struct {
	net.Conn
	key   string // the pool's key of its host
	lim   limitReader
	since time.Time // idle since
}

// limitReader reads the connection, at most n bytes while n > 0 (the
// response's head); n < 0 is no limit (the body, bounded by its length).
type limitReader struct {
	r net.Conn
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, errHeaderTooLarge
	}
	if l.n > 0 && int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}

// Errors of a request.
var (
	// errStale wraps the failure of a reused connection before any byte
	// of the response: the server had closed it while idle, and the
	// request may be sent again on a new one.
	errStale = errors.New("connpool: idle connection closed by the server")
	// errHeaderTooLarge: a response's head is longer than maxHeaderBytes.
	errHeaderTooLarge = fmt.Errorf("connpool: response headers exceed %d bytes", maxHeaderBytes)
	// errClosedBody: a read after the body was closed.
	errClosedBody = errors.New("connpool: read on a closed body")
)

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 1024) }}
)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.serves(req) {
		return t.o.Fallback.RoundTrip(req)
	}
	key := hostPort(req.URL)
	// A kept connection may have been closed by the server while idle;
	// nothing of the response read means the request may be sent again.
	for {
		c := t.get(key)
		if c == nil {
			break
		}
		resp, err := t.send(req, c)
		if err == nil || !errors.Is(err, errStale) || req.Context().Err() != nil {
			return resp, err
		}
	}
	c, err := t.dial(req.Context(), req.URL, key)
	if err != nil {
		return nil, err
	}
	return t.send(req, c)
}

// serves reports whether the request is one to send here.
func (t *Transport) serves(req *http.Request) bool {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) ||
		(req.URL.Scheme != "https" && req.URL.Scheme != "http") {
		return false
	}
	if t.o.Proxy != nil {
		if u, err := t.o.Proxy(req); err != nil || u != nil {
			return false
		}
	}
	return true
}

// hostPort is the pool key of a URL: its host and port, the default port
// of its scheme when none is given.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// dial opens a connection to the URL's host, TLS for https.
func (t *Transport) dial(ctx context.Context, u *url.URL, key string) (*conn, error) {
	raw, err := t.o.Dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		cfg := t.o.TLS.Clone()
		cfg.ServerName = u.Hostname()
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		raw = tc
	}
	return &conn{Conn: raw, key: key, lim: limitReader{r: raw}}, nil
}

// get takes the host's most recently used idle connection, if one is
// younger than IdleTimeout.
func (t *Transport) get(key string) *conn {
	now := t.o.Now()
	var found *conn
	var expired []*conn
	t.mu.Lock()
	for cs := t.idle[key]; len(cs) > 0 && found == nil; cs = t.idle[key] {
		c := cs[len(cs)-1]
		t.remove(key, len(cs)-1)
		if now.Sub(c.since) < t.o.IdleTimeout {
			found = c
		} else {
			expired = append(expired, c)
		}
	}
	t.mu.Unlock()
	closeAll(expired)
	return found
}

// closeAll closes connections outside the pool's lock (closing a TLS
// connection writes its close alert).
func closeAll(cs []*conn) {
	for _, c := range cs {
		c.Close()
	}
}

// remove drops the i-th idle connection of a host from the pool.
func (t *Transport) remove(key string, i int) {
	cs := t.idle[key]
	cs = append(cs[:i], cs[i+1:]...)
	if len(cs) == 0 {
		delete(t.idle, key)
	} else {
		t.idle[key] = cs
	}
	t.n--
}

// put gives a connection back for the next request to its host, or closes
// it when the pool is full.
func (t *Transport) put(c *conn) {
	now := t.o.Now()
	c.since = now
	var expired []*conn
	t.mu.Lock()
	if t.n >= t.o.MaxIdle {
		expired = t.sweep(now)
	}
	kept := t.n < t.o.MaxIdle
	if kept {
		t.idle[c.key] = append(t.idle[c.key], c)
		t.n++
		if t.sweeper == nil {
			t.sweeper = time.AfterFunc(t.o.IdleTimeout, t.sweepIdle)
		}
	}
	t.mu.Unlock()
	if !kept {
		expired = append(expired, c)
	}
	closeAll(expired)
}

// sweepIdle closes the connections idle for IdleTimeout, on a timer armed
// while any is idle, so that a pool no request uses any more (its
// accounts gone in a reload) does not hold its sockets.
func (t *Transport) sweepIdle() {
	t.mu.Lock()
	expired := t.sweep(t.o.Now())
	if t.n > 0 && t.sweeper != nil {
		t.sweeper.Reset(t.o.IdleTimeout / 2)
	} else {
		t.sweeper = nil
	}
	t.mu.Unlock()
	closeAll(expired)
}

// sweep removes the connections idle for IdleTimeout and returns them to
// be closed.
func (t *Transport) sweep(now time.Time) []*conn {
	var out []*conn
	for key, cs := range t.idle {
		for i := len(cs) - 1; i >= 0; i-- {
			if now.Sub(cs[i].since) >= t.o.IdleTimeout {
				out = append(out, cs[i])
				t.remove(key, i)
				cs = t.idle[key]
			}
		}
	}
	return out
}

// CloseIdleConnections closes the idle connections, Fallback's included.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.n = map[string][]*conn{}, 0
	if t.sweeper != nil {
		t.sweeper.Stop()
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, cs := range idle {
		closeAll(cs)
	}
	if ci, ok := t.o.Fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
