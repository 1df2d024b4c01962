package retailcrm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/connpool"
)

// Connection pool bounds. Each account is its own HTTPS host, polled once
// an interval; what makes that cheap is measured in docs/PERFORMANCE.md
// ("Over TLS").
const (
	// IdleTimeout keeps an idle connection long enough for an account on
	// @every 1m to find it at its next poll. Servers close idle
	// connections after their own keep-alive time (nginx: 75 s); a request
	// that finds its connection closed is sent again on a new one, which
	// resumes the host's TLS session.
	IdleTimeout = 2 * time.Minute
	// MaxIdle bounds the idle connections of one pool, one per account
	// host for up to 12,288 accounts: the memory budget. An idle
	// connection costs its socket and TLS state, about 10 KB measured
	// (16 KB more after a response in full-size TLS records), so 120–320 MB
	// at most; past it, the accounts kept first stay kept and the others
	// connect at each poll.
	MaxIdle = 12288
	// SessionCacheSize is how many hosts' TLS sessions a pool remembers:
	// a new connection to one of them resumes its session and skips the
	// certificate chain's verification. An entry is a ticket of a few
	// hundred bytes (certificates are shared between entries).
	SessionCacheSize = 32768
	// proxiedMaxIdle bounds the idle connections of net/http's pool, which
	// serves the accounts reached through a proxy: about 55 KB each there
	// (two goroutines and their buffers), so 85 MB at most.
	proxiedMaxIdle = 1536
)

// TransportOptions shape a pool of NewTransport. The zero value trusts
// the system's CAs and dials the host named in the URL.
type TransportOptions struct {
	CA []byte // PEM CA certificates trusted besides the system's (ca_file)
	// DialContext opens connections; nil dials as net/http does. The
	// benchmarks resolve many host names to one simulator with it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewTransport returns the connection pool clients use (internal/connpool):
// a kept-alive connection per account host, which costs no goroutine while
// idle, bounded by MaxIdle, and TLS session resumption for new ones. The
// requests it does not serve (through a proxy, or with a body) go to
// net/http's Transport, configured alike.
func NewTransport(o TransportOptions) (*connpool.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.MaxIdleConns = proxiedMaxIdle
	t.IdleConnTimeout = IdleTimeout
	t.TLSClientConfig = &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(SessionCacheSize)}
	// HTTP/1.1 only: an account sends one request at a time, so HTTP/2's
	// streams buy nothing, and its connections are not bounded by
	// MaxIdleConns (measured: docs/PERFORMANCE.md, "TLS").
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	if len(o.CA) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool() // no system store: only the given CAs
		}
		if !pool.AppendCertsFromPEM(o.CA) {
			return nil, ErrNoCertificate
		}
		t.TLSClientConfig.RootCAs = pool
	}
	if o.DialContext != nil {
		t.DialContext = o.DialContext
	}
	return connpool.New(connpool.Options{
		TLS:         t.TLSClientConfig,
		Dial:        o.DialContext,
		Proxy:       t.Proxy,
		Fallback:    t,
		MaxIdle:     MaxIdle,
		IdleTimeout: IdleTimeout,
	}), nil
}
