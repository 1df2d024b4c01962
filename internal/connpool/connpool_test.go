package connpool

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// server is a TLS server for every host of crm.test, counting the
// connections it accepted and the handshakes that resumed a session.
type server struct {
	*httptest.Server
	conns, closed, resumed atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) (*server, *tls.Config) {
	t.Helper()
	chain := testkit.NewTLSChain(t, "*.crm.test")
	cert, err := tls.X509KeyPair(chain.CertPEM, chain.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed:
			s.closed.Add(1)
		}
	}
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, VerifyConnection: func(cs tls.ConnectionState) error {
		if cs.DidResume {
			s.resumed.Add(1)
		}
		return nil
	}}
	s.StartTLS()
	t.Cleanup(s.Close)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(chain.CAPEM)
	return s, &tls.Config{RootCAs: roots, ClientSessionCache: tls.NewLRUClientSessionCache(64)}
}

// fallback records the requests given to it.
type fallback struct{ got []string }

func (f *fallback) RoundTrip(req *http.Request) (*http.Response, error) {
	f.got = append(f.got, req.Method+" "+req.URL.Host)
	return &http.Response{StatusCode: 299, Body: http.NoBody, Request: req}, nil
}

// newTransport is a pool whose every host of crm.test dials s.
func newTransport(s *server, cfg *tls.Config, max int, now func() time.Time) (*Transport, *fallback) {
	fb := &fallback{}
	addr := s.Listener.Addr().String()
	return New(Options{
		TLS: cfg,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		Fallback:    fb,
		MaxIdle:     max,
		IdleTimeout: time.Minute,
		Now:         now,
	}), fb
}

// get requests host's /path and returns the body.
func get(t *testing.T, tr http.RoundTripper, host, path string) string {
	t.Helper()
	resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://"+host+".crm.test"+path, nil).WithContext(context.Background()))
	if err != nil {
		t.Fatalf("%s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s%s body: %v", host, path, err)
	}
	return string(b)
}

func hello(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || r.TLS.ServerName != strings.Split(r.Host, ":")[0] {
		http.Error(w, "misdirected", http.StatusMisdirectedRequest)
		return
	}
	fmt.Fprintf(w, "hello %s", r.Host)
}

func TestKeepsAConnectionPerHostWithinTheBudget(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		wantConns int64 // 3 rounds over hosts a, b, c
		wantIdle  int
	}{
		{"room for all", 8, 3, 3},
		// The hosts kept first stay kept; c connects each round.
		{"room for two", 2, 2 + 3, 2},
		{"no room", 0, 9, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, cfg := newServer(t, hello)
			tr, fb := newTransport(s, cfg, tc.max, nil)
			for range 3 {
				for _, h := range []string{"a", "b", "c"} {
					if got := get(t, tr, h, "/"); got != "hello "+h+".crm.test" {
						t.Fatalf("answer %q", got)
					}
				}
			}
			if got := s.conns.Load(); got != tc.wantConns {
				t.Errorf("connections = %d, want %d", got, tc.wantConns)
			}
			if tr.n != tc.wantIdle {
				t.Errorf("idle = %d, want %d", tr.n, tc.wantIdle)
			}
			if s.resumed.Load() != tc.wantConns-3 {
				t.Errorf("resumed handshakes = %d, want %d (every connection after a host's first)", s.resumed.Load(), tc.wantConns-3)
			}
			if len(fb.got) != 0 {
				t.Errorf("fallback used: %v", fb.got)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	s, cfg := newServer(t, hello)
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	step := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	tr, _ := newTransport(s, cfg, 8, clock)
	get(t, tr, "a", "/")
	get(t, tr, "b", "/")
	step(59 * time.Second)
	get(t, tr, "a", "/") // reused, idle again from now
	if got := s.conns.Load(); got != 2 {
		t.Fatalf("connections = %d after a reuse within the timeout, want 2", got)
	}
	step(time.Minute)
	tr.sweepIdle() // as its timer does
	if tr.n != 0 {
		t.Errorf("idle = %d after a minute without requests, want 0", tr.n)
	}
	get(t, tr, "a", "/")
	if got := s.conns.Load(); got != 3 {
		t.Errorf("connections = %d after the idle timeout, want 3", got)
	}
}

// TestIdleConnectionsClosedWithoutTraffic: a pool nothing uses any more
// closes its idle connections on its own.
func TestIdleConnectionsClosedWithoutTraffic(t *testing.T) {
	s, cfg := newServer(t, hello)
	tr, _ := newTransport(s, cfg, 8, nil)
	tr.o.IdleTimeout = 20 * time.Millisecond
	get(t, tr, "a", "/")
	get(t, tr, "b", "/")
	for deadline := time.Now().Add(10 * time.Second); s.closed.Load() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d of 2 connections closed 10 s after they went idle", s.closed.Load())
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.n != 0 || tr.sweeper != nil {
		t.Errorf("idle = %d, sweeper armed = %v after the sweep", tr.n, tr.sweeper != nil)
	}
}

func TestServerClosedIdleConnectionIsRetried(t *testing.T) {
	s, cfg := newServer(t, hello)
	tr, _ := newTransport(s, cfg, 8, nil)
	get(t, tr, "a", "/")
	s.CloseClientConnections() // as a server's keep-alive timeout does
	if got := get(t, tr, "a", "/"); got != "hello a.crm.test" {
		t.Fatalf("answer after the server closed the idle connection: %q", got)
	}
	if got := s.conns.Load(); got != 2 {
		t.Errorf("connections = %d, want 2", got)
	}
}

func TestWhenAConnectionIsNotReused(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		read    func(*http.Response) // what the caller does with the body
	}{
		{"body closed before its end", func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, strings.Repeat("x", 64<<10))
		}, func(r *http.Response) { io.ReadFull(r.Body, make([]byte, 10)); r.Body.Close() }},
		{"connection: close", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}, func(r *http.Response) { io.ReadAll(r.Body); r.Body.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, cfg := newServer(t, tc.handler)
			tr, _ := newTransport(s, cfg, 8, nil)
			for range 2 {
				resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://a.crm.test/", nil).WithContext(context.Background()))
				if err != nil {
					t.Fatal(err)
				}
				tc.read(resp)
			}
			if got := s.conns.Load(); got != 2 {
				t.Errorf("connections = %d, want 2 (none reused)", got)
			}
			if tr.n != 0 {
				t.Errorf("idle = %d, want 0", tr.n)
			}
		})
	}
}

func TestEmptyBodyFreesTheConnection(t *testing.T) {
	s, cfg := newServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tr, _ := newTransport(s, cfg, 8, nil)
	for range 2 {
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://a.crm.test/", nil).WithContext(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // not read: nothing to read
	}
	if got := s.conns.Load(); got != 1 {
		t.Errorf("connections = %d, want 1", got)
	}
}

func TestCancelEndsABlockedRequest(t *testing.T) {
	release := make(chan struct{})
	s, cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	t.Cleanup(func() { close(release) })
	tr, _ := newTransport(s, cfg, 8, nil)
	get(t, tr, "a", "/") // a kept connection, which the cancelled request takes
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://a.crm.test/slow", nil).WithContext(ctx))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if tr.n != 0 {
		t.Errorf("idle = %d: the interrupted connection was kept", tr.n)
	}
	if got := get(t, tr, "a", "/"); got != "ok" {
		t.Errorf("next request: %q", got)
	}
}

func TestGzipIsUndoneUnlessAskedFor(t *testing.T) {
	s, cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			io.WriteString(w, "plain:"+r.Header.Get("Accept-Encoding"))
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, strings.Repeat("z", 10_000))
		zw.Close()
	})
	tr, _ := newTransport(s, cfg, 8, nil)
	for range 2 {
		if got := get(t, tr, "a", "/"); got != strings.Repeat("z", 10_000) {
			t.Fatalf("decompressed body: %d bytes %.20q", len(got), got)
		}
	}
	if got := s.conns.Load(); got != 1 {
		t.Errorf("connections = %d, want 1: a gzip body read to its end frees the connection", got)
	}
	req := httptest.NewRequest(http.MethodGet, "https://a.crm.test/", nil).WithContext(context.Background())
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "plain:identity" {
		t.Errorf("caller's own encoding: %q", b)
	}
}

func TestFallback(t *testing.T) {
	s, cfg := newServer(t, hello)
	tr, fb := newTransport(s, cfg, 8, nil)
	proxied := httptest.NewRequest(http.MethodGet, "https://p.crm.test/", nil)
	tr.o.Proxy = func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "p.crm.test" {
			return url.Parse("http://proxy.example:3128")
		}
		return nil, nil
	}
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "https://a.crm.test/", strings.NewReader("x=1")),
		proxied,
		httptest.NewRequest(http.MethodGet, "ftp://a.crm.test/", nil),
	} {
		resp, err := tr.RoundTrip(req.WithContext(context.Background()))
		if err != nil || resp.StatusCode != 299 {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
	}
	if want := "[POST a.crm.test GET p.crm.test GET a.crm.test]"; fmt.Sprint(fb.got) != want {
		t.Errorf("fallback got %v, want %s", fb.got, want)
	}
	if s.conns.Load() != 0 {
		t.Error("the pool served a request that is not its own")
	}
}

// rawServer answers every request on a plain TCP connection with answer,
// and counts connections.
func rawServer(t *testing.T, answer string) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

func TestHostileAnswers(t *testing.T) {
	tests := []struct {
		name, answer string
		wantErr      bool
	}{
		// Bytes after the response: the connection is not trusted again.
		{"extra bytes", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false},
		{"endless headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 1100), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawServer(t, tc.answer)
			tr := New(Options{MaxIdle: 8, IdleTimeout: time.Minute})
			for range 2 {
				resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://"+addr+"/", nil).WithContext(context.Background()))
				if tc.wantErr {
					if err == nil || !errors.Is(err, errHeaderTooLarge) {
						t.Fatalf("err = %v, want %v", err, errHeaderTooLarge)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Fatalf("body %q", b)
				}
			}
			if got := conns.Load(); got != 2 {
				t.Errorf("connections = %d, want 2 (none reused)", got)
			}
		})
	}
}

func TestConcurrentHosts(t *testing.T) {
	s, cfg := newServer(t, hello)
	tr, _ := newTransport(s, cfg, 4, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				h := fmt.Sprintf("h%d", (g+i)%6)
				if got := get(t, tr, h, "/"); got != "hello "+h+".crm.test" {
					t.Errorf("answer %q", got)
				}
			}
		})
	}
	wg.Wait()
	tr.CloseIdleConnections()
	if tr.n != 0 || len(tr.idle) != 0 {
		t.Errorf("idle after CloseIdleConnections: %d", tr.n)
	}
}
