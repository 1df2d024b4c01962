package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// With DAEMON_LONG_TLS=1, BenchmarkAccounts serves every account over TLS
// under a host name of its own, as production does
// (https://acct-N.crm.test:PORT, resolved to the simulator by the daemon's
// dialer), with a wildcard certificate from a test CA that the config
// trusts through ca_file. The simulator's server checks each request's
// SNI, closes idle connections after DAEMON_LONG_KEEPALIVE (75s, nginx's
// keepalive_timeout) and offers HTTP/2 unless DAEMON_LONG_H2=0.

// simDomain is the accounts' parent domain in the TLS benchmark.
const simDomain = "crm.test"

// tlsDirEnv tells the simulator process where the certificate is: set, it
// serves TLS.
const tlsDirEnv = "DAEMON_CRM_TLS_DIR"

// handshakes counts the simulator's TLS handshakes, full and resumed.
type handshakes struct{ full, resumed atomic.Int64 }

// serveTLS serves sim's accounts by host name over TLS; the handshake
// counts are served at /handshakes of the receiver (see crmHelper).
func serveTLS(sim http.Handler, dir string, hs *handshakes) *httptest.Server {
	keepalive, err := time.ParseDuration(envOr("DAEMON_LONG_KEEPALIVE", "75s"))
	if err != nil {
		panic(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		panic(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.Host)
		name, ok := strings.CutSuffix(host, "."+simDomain)
		if !ok || r.TLS == nil || r.TLS.ServerName != host {
			http.Error(w, "misdirected request", http.StatusMisdirectedRequest)
			return
		}
		r.URL.Path, r.URL.RawPath = "/"+name+r.URL.Path, ""
		sim.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = envOr("DAEMON_LONG_H2", "1") == "1"
	srv.Config.IdleTimeout = keepalive
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.DidResume {
				hs.resumed.Add(1)
			} else {
				hs.full.Add(1)
			}
			return nil
		},
	}
	srv.StartTLS()
	return srv
}

// tlsAccounts prepares the TLS benchmark's side of the daemon: the test
// PKI in dir (the simulator's certificate, the CA for ca_file), and a
// dialer that resolves every account host to the simulator.
func tlsAccounts(tb testing.TB, dir string) (caFile string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	chain := testkit.NewTLSChain(tb, "*."+simDomain)
	for name, b := range map[string][]byte{"cert.pem": chain.CertPEM, "key.pem": chain.KeyPEM, "ca.pem": chain.CAPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || !strings.HasSuffix(host, "."+simDomain) {
			return nil, fmt.Errorf("benchmark dialer: %s is not an account host", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	return filepath.Join(dir, "ca.pem"), dial
}

// accountURL is an account's base URL in the TLS benchmark, on the
// simulator's port (from its https://127.0.0.1:PORT URL).
func accountURL(simURL, name string) string {
	return "https://" + name + "." + simDomain + ":" + simURL[strings.LastIndexByte(simURL, ':')+1:]
}

// readHandshakes reads the simulator's handshake counts.
func readHandshakes(tb testing.TB, rcvURL string) (full, resumed float64) {
	_, body := get(tb, rcvURL+"/handshakes")
	if _, err := fmt.Sscanf(body, "full=%g resumed=%g", &full, &resumed); err != nil {
		tb.Fatalf("handshakes %q: %v", body, err)
	}
	return full, resumed
}

// trim shortens s to n bytes for a log line (readyz lists every stale
// account).
func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
