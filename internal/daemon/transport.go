package daemon

import (
	"context"
	"net"
	"net/http"

	"github.com/retailcrm-poller/retailcrm-poller/internal/connpool"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// pools are the accounts' API connection pools, one per ca_file's
// contents. Accounts share them, so idle connections and TLS sessions are
// bounded per pool, not per account, and a reload keeps them.
type pools struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error) // nil: the URL's host
	byCA map[string]*connpool.Transport
}

// get returns the pool of the accounts that trust ca (nil: the system's
// CAs only), made at its first use. Called only from prepare: start and
// reloads run one at a time.
func (p *pools) get(ca []byte) (http.RoundTripper, error) {
	if t, ok := p.byCA[string(ca)]; ok {
		return t, nil
	}
	t, err := retailcrm.NewTransport(retailcrm.TransportOptions{CA: ca, DialContext: p.dial})
	if err != nil {
		return nil, err
	}
	if p.byCA == nil {
		p.byCA = map[string]*connpool.Transport{}
	}
	p.byCA[string(ca)] = t
	return t, nil
}
