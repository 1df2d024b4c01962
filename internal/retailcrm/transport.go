package retailcrm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"
)

// Connection pool bounds. Each account is its own HTTPS host, so at 10,000
// accounts most polls would open a new TLS connection; what makes that
// cheap is measured in docs/PERFORMANCE.md ("TLS").
const (
	// IdleTimeout keeps an idle connection long enough for an account on
	// @every 1m to find it at its next poll. Servers close idle
	// connections after their own keep-alive time (nginx: 75 s), which
	// ends longer waits anyway; session resumption makes the new
	// connection cheap then.
	IdleTimeout = 3 * time.Minute
	// MaxIdle bounds the idle connections of one pool: the memory budget
	// (about 30 KB each over TLS, so 48 MB at most).
	MaxIdle = 1536
	// SessionCacheSize is how many hosts' TLS sessions a pool remembers:
	// a new connection to one of them resumes its session and skips the
	// certificate chain's verification. An entry is a ticket of a few
	// hundred bytes (certificates are shared between entries).
	SessionCacheSize = 32768
)

// TransportOptions shape a pool of NewTransport. The zero value trusts
// the system's CAs and dials the host named in the URL.
type TransportOptions struct {
	CA []byte // PEM CA certificates trusted besides the system's (ca_file)
	// DialContext opens connections; nil dials as net/http does. The
	// benchmarks resolve many host names to one simulator with it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewTransport returns the connection pool clients use: kept-alive
// connections (a dial per request would add a variable delay that bunches
// paced requests up on arrival), a few idle ones per account host, a
// bound on all idle ones, so thousands of accounts sharing it keep only
// the connections in recent use, and TLS session resumption for the rest.
func NewTransport(o TransportOptions) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.MaxIdleConns = MaxIdle
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
	return t, nil
}
