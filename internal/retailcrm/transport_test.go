package retailcrm_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// tlsServer serves https://acct.crm.test on a loopback port and records,
// per handshake, whether it resumed a session.
type tlsServer struct {
	*httptest.Server
	mu      sync.Mutex
	resumed []bool
}

func newTLSServer(t *testing.T, chain testkit.TLSChain) *tlsServer {
	s := &tlsServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.ServerName)
	}))
	s.TLS = &tls.Config{
		Certificates: []tls.Certificate{chain.Certificate(t)},
		VerifyConnection: func(cs tls.ConnectionState) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.resumed = append(s.resumed, cs.DidResume)
			return nil
		},
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// dialTo sends every connection to addr, as if DNS resolved the account's
// host name to it.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func TestTransportTrustsCAFileAndResumesSessions(t *testing.T) {
	chain := testkit.NewTLSChain(t, "*.crm.test")
	srv := newTLSServer(t, chain)
	addr := srv.Listener.Addr().(*net.TCPAddr)
	url := "https://acct.crm.test:" + strconv.Itoa(addr.Port) + "/"
	get := func(tr http.RoundTripper) (string, error) {
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	// Without ca_file, the test CA is not trusted: the option adds a CA,
	// it never turns verification off.
	plain, err := retailcrm.NewTransport(retailcrm.TransportOptions{DialContext: dialTo(addr.String())})
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := get(plain); !errors.As(err, &unknown) {
		t.Fatalf("without ca_file: err = %v, want an unknown authority", err)
	}
	srv.mu.Lock()
	srv.resumed = nil
	srv.mu.Unlock()

	tr, err := retailcrm.NewTransport(retailcrm.TransportOptions{CA: chain.CAPEM, DialContext: dialTo(addr.String())})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sni, err := get(tr)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if sni != "acct.crm.test" {
			t.Fatalf("request %d: the server saw SNI %q, want the account's host", i, sni)
		}
		tr.CloseIdleConnections() // the next request needs a new connection
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// The first handshake is full; the next two resume its session.
	if want := []bool{false, true, true}; !slices.Equal(srv.resumed, want) {
		t.Fatalf("handshakes resumed = %v, want %v", srv.resumed, want)
	}
}

func TestTransportRefusesCAWithoutCertificate(t *testing.T) {
	_, err := retailcrm.NewTransport(retailcrm.TransportOptions{CA: []byte("not a certificate")})
	if !errors.Is(err, retailcrm.ErrNoCertificate) {
		t.Fatalf("err = %v, want ErrNoCertificate", err)
	}
}
