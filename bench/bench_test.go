// Package bench measures the whole poller the way it runs in production:
// the real daemon (package daemon) in-process, polling the RetailCRM
// simulator (crmsim) over loopback HTTP and delivering signed webhooks to a
// loopback receiver. It holds the figures of docs/PERFORMANCE.md that no
// single package can produce: change-to-delivery latency and API requests
// per poll. It has no non-test code.
//
// The default `go test ./bench/` runs short smoke versions (seconds); the
// long measurements are benchmarks behind BENCH_LONG=1:
//
//	BENCH_LONG=1 go test -run '^$' -bench 'Latency/every=1s' -benchtime=1x -count=5 -timeout 30m ./bench/
//	BENCH_LONG=1 go test -run '^$' -bench 'Latency/every=1m' -benchtime=1x -count=1 -timeout 30m ./bench/
//	go test -run RequestsPerPoll -v ./bench/
package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/daemon"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// webhookSecret signs the webhooks; the receiver does not check
// signatures (the daemon's and deliver's tests do), but signing is part of
// the measured cost.
var webhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("bench-webhook-key-0123456789abcdef"))

// longEnv enables the long benchmarks.
const longEnv = "BENCH_LONG"

func skipUnlessLong(tb testing.TB) {
	tb.Helper()
	if os.Getenv(longEnv) == "" {
		tb.Skipf("long benchmark: set %s=1", longEnv)
	}
}

// receiver records when each event id first arrived.
type receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	arrived map[string]time.Time
	dups    int
}

func newReceiver(tb testing.TB) *receiver {
	r := &receiver{arrived: make(map[string]time.Time)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// The arrival time is taken before the body is read: the latency
		// goal is about the request reaching the app.
		at := time.Now()
		id := req.Header.Get("webhook-id")
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.arrived[id]; ok {
			r.dups++
			return
		}
		r.arrived[id] = at
	}))
	tb.Cleanup(r.srv.Close)
	return r
}

// at returns the first arrival of an event id.
func (r *receiver) at(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.arrived[id]
	return t, ok
}

// count returns how many distinct event ids arrived, and duplicates.
func (r *receiver) count() (distinct, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrived), r.dups
}

// env is a simulator, a receiver and a state directory.
type env struct {
	tb  testing.TB
	sim *crmsim.Sim
	crm *httptest.Server
	rcv *receiver
	dir string
}

func newEnv(tb testing.TB) *env {
	sim := crmsim.New(crmsim.Options{Seed: 42})
	crm := httptest.NewServer(sim)
	tb.Cleanup(crm.Close)
	return &env{tb: tb, sim: sim, crm: crm, rcv: newReceiver(tb), dir: tb.TempDir()}
}

// addAccounts adds n simulated accounts "acct-0".. with the simulator's
// default rate limit (10 requests/s per key, as RetailCRM).
func (e *env) addAccounts(n int) []*crmsim.Account {
	accts := make([]*crmsim.Account, n)
	for i := range accts {
		name := "acct-" + strconv.Itoa(i)
		accts[i] = e.sim.AddAccount(crmsim.AccountOptions{Name: name, APIKey: name + "-key-0123456789"})
	}
	return accts
}

// config returns a daemon config for accts on schedule, every other key at
// its default (start_from now, statuses [approved], rate_limit 8,
// look_back 200 / 2m, webhook concurrency 4).
func (e *env) config(schedule string, accts []*crmsim.Account) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\nlisten: 127.0.0.1:0\nadmin_socket: \"\"\nlog: {level: info, format: json}\n",
		filepath.Join(e.dir, "state"))
	fmt.Fprintf(&b, "defaults:\n  schedule: %q\n  webhooks:\n    - url: %s\n      secret: %s\naccounts:\n",
		schedule, e.rcv.srv.URL, webhookSecret)
	for _, a := range accts {
		fmt.Fprintf(&b, "  - {name: %s, url: %s, api_key: %s}\n", a.Name(), a.BaseURL(e.crm.URL), a.APIKey())
	}
	return b.String()
}

// startDaemon runs the daemon on cfg until the test ends. Logs are
// formatted as in production (JSON, info), then dropped.
func (e *env) startDaemon(yaml string) *daemon.Ready {
	tb := e.tb
	tb.Helper()
	path := filepath.Join(e.dir, "poller.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan *daemon.Ready, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg, err := config.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{ConfigPath: path, Logger: log, OnReady: func(r *daemon.Ready) { readyCh <- r }})
	}()
	var ready *daemon.Ready
	select {
	case ready = <-readyCh:
	case err := <-done:
		cancel()
		tb.Fatalf("daemon returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		tb.Fatal("daemon not ready within 30s")
	}
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("daemon: %v", err)
			}
		case <-time.After(time.Minute):
			tb.Error("daemon did not stop within a minute")
		}
	})
	return ready
}

// polls returns the successful polls of accts so far.
func polls(r *daemon.Ready, accts []*crmsim.Account) float64 {
	n := 0.0
	for _, a := range accts {
		n += testutil.ToFloat64(r.Metrics.PollsTotal.WithLabelValues(a.Name(), "ok"))
	}
	return n
}

// requests returns the API requests accts received so far.
func requests(accts []*crmsim.Account) int {
	n := 0
	for _, a := range accts {
		n += a.Requests("")
	}
	return n
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	for end := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// median returns the median of xs (the mean of the middle two for an even
// count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
