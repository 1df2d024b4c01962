package poll

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// bigHistory builds an account with about n history entries: mostly
// comments, about one in twenty an approval (and as many moves back to new).
func bigHistory(n int) (*crmsim.Sim, *crmsim.Account) {
	sim := crmsim.New(crmsim.Options{Seed: 100})
	crm := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: "key-acme", RateLimit: -1})
	rng := rand.New(rand.NewPCG(100, 1))
	orders := make([]int64, 500)
	for i := range orders {
		orders[i] = crm.CreateOrder("main", "new")
	}
	for crm.HistoryLen() < n {
		o := orders[rng.IntN(len(orders))]
		if rng.IntN(20) == 0 {
			if st, _ := crm.OrderStatus(o); st == "approved" {
				crm.SetStatus(o, "new")
			} else {
				crm.SetStatus(o, "approved")
			}
			continue
		}
		crm.SetField(o, "manager_comment", nil, "called back")
	}
	return sim, crm
}

// heapSampler records the highest HeapInuse while it runs.
type heapSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

func sampleHeap(every time.Duration) *heapSampler {
	s := &heapSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		var ms runtime.MemStats
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapInuse)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Peak returns the highest HeapInuse seen, after stopping the sampler.
func (s *heapSampler) Peak() uint64 {
	close(s.stop)
	s.done.Wait()
	return s.peak
}

// drainBig drains the simulator server into a fresh store in one poll and
// returns the peak HeapInuse and the number of events.
func drainBig(tb testing.TB, sim simServer) (peak uint64, events int) {
	tb.Helper()
	cfg := testAccount(sim.url)
	cfg.PageBudget = 1 << 20
	st, err := store.Open(filepath.Join(tb.TempDir(), store.FileName), store.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	m := metrics.New()
	client, err := retailcrm.New(testClientOptions(cfg, m, 2))
	if err != nil {
		tb.Fatal(err)
	}
	p := New(cfg, client, st, m, discard(), nil)
	runtime.GC()
	s := sampleHeap(2 * time.Millisecond)
	err = p.Poll(context.Background())
	peak = s.Peak()
	if err != nil {
		tb.Fatal(err)
	}
	return peak, sim.readAll(tb, st)
}

// readAll checks that the poll's cursor reached the simulated history's
// last id and returns the events pending in the outbox.
func (s simServer) readAll(tb testing.TB, st *store.Store) int {
	tb.Helper()
	state, err := st.State("acme")
	if err != nil {
		tb.Fatal(err)
	}
	if state.Cursor != s.lastID {
		tb.Fatalf("cursor %d after reading the history, want %d", state.Cursor, s.lastID)
	}
	pending, _, err := st.Counts("acme")
	if err != nil {
		tb.Fatal(err)
	}
	return pending
}

// simServer serves bigHistory(n) from a child process, so that the heap
// the parent measures is the poller's alone.
type simServer struct {
	url     string // base URL of account acme
	lastID  int64
	entries int
}

// startSimServer re-runs the test binary as a simulator server (see
// TestMain and simMain) and returns its address once it serves.
func startSimServer(tb testing.TB, n int, limited bool, extra ...string) simServer {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envSimEntries+"="+strconv.Itoa(n), envSimLimited+"="+strconv.FormatBool(limited))
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var s simServer
	if _, err := fmt.Fscan(out, &s.url, &s.lastID, &s.entries); err != nil {
		tb.Fatalf("simulator server: %v", err)
	}
	return s
}

// simMain builds the history and serves it until killed; it prints the
// account URL, the last history id and the number of entries.
func simMain(n int) int {
	build := bigHistory
	if os.Getenv(envSimSaves) == "true" {
		build = saveHistory
	}
	sim, crm := build(n)
	if os.Getenv(envSimLimited) == "true" {
		crm.SetRateLimit(0) // RetailCRM's 10 requests/s
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "simulator:", err)
		return 1
	}
	fmt.Println(crm.BaseURL("http://"+ln.Addr().String()), crm.LastHistoryID(), crm.HistoryLen())
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "simulator:", err)
	}
	return 1
}

// BenchmarkDrain100k drains 100,000 history entries (a simulator in a
// child process) in one poll and reports the peak heap in use (heapMB).
//
//	go test -run='^$' -bench=Drain100k -benchtime=3x ./internal/poll/
func BenchmarkDrain100k(b *testing.B) {
	sim := startSimServer(b, 100_000, false)
	var peak uint64
	var events int
	b.ResetTimer()
	for range b.N {
		p, n := drainBig(b, sim)
		peak, events = max(peak, p), n
	}
	b.ReportMetric(float64(peak)/(1<<20), "heapMB")
	b.ReportMetric(float64(sim.entries), "entries")
	b.ReportMetric(float64(events), "events")
}

// Draining a long history keeps the heap under 50 MB: 10,000 entries by
// default, 100,000 with POLL_LONG=1 (a minute under -race).
// BenchmarkDrain100k records the figure.
func TestDrainHeap(t *testing.T) {
	n := 10_000
	if os.Getenv("POLL_LONG") == "1" {
		n = 100_000
	}
	sim := startSimServer(t, n, false)
	peak, events := drainBig(t, sim)
	t.Logf("%d entries: peak heap in use %.1f MB, %d events", sim.entries, float64(peak)/(1<<20), events)
	if events < n/50 {
		t.Errorf("%d events from %d entries, want about %d", events, n, n/40)
	}
	if peak > 50<<20 {
		t.Errorf("peak heap in use %.1f MB, want under 50 MB", float64(peak)/(1<<20))
	}
}

// BenchmarkCatchUp reads a long history from the start, as start_from:
// beginning does, with the account's default rate_limit (8) against a
// simulator that enforces RetailCRM's 10 requests/s (in a child process).
// One poll reads to the end, committing every page_budget pages, so it
// should take about entries / (rate_limit x 100) seconds plus one orders
// request per 100 events; it reports the rate, the time against that
// estimate, the progress lines logged and any 503 the client met.
// POLL_CATCHUP_ENTRIES sets the history's length (100,000):
//
//	go test -run='^$' -bench=CatchUp -benchtime=1x -timeout 60m ./internal/poll/
//	POLL_CATCHUP_ENTRIES=1000000 go test -run='^$' -bench=CatchUp -benchtime=1x -timeout 60m ./internal/poll/
func BenchmarkCatchUp(b *testing.B) {
	n := 100_000
	if v := os.Getenv("POLL_CATCHUP_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	sim := startSimServer(b, n, true)
	acct := testAccount(sim.url)
	acct.RateLimit, acct.PageBudget = 8, 50 // the defaults
	for range b.N {
		st, err := store.Open(filepath.Join(b.TempDir(), store.FileName), store.Options{Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		m := metrics.New()
		client, err := retailcrm.New(testClientOptions(acct, m, 2))
		if err != nil {
			b.Fatal(err)
		}
		var logs testkit.SyncBuffer
		p := New(acct, client, st, m, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		start := time.Now()
		if err := p.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		events := sim.readAll(b, st)
		st.Close()
		requests := func(endpoint, code string) float64 {
			return testutil.ToFloat64(m.APIRequestsTotal.WithLabelValues("acme", endpoint, code))
		}
		hist, orders := requests("history", "200"), requests("orders", "200")
		estimate := (hist + orders) / acct.RateLimit
		b.ReportMetric(float64(sim.entries)/took.Seconds(), "entries/s")
		b.ReportMetric(took.Seconds(), "s")
		b.ReportMetric(float64(sim.entries)/(acct.RateLimit*100), "goal-s")
		b.ReportMetric(estimate, "requests/rate-s")
		b.ReportMetric(float64(strings.Count(logs.String(), "catching up on the order history")), "progress-lines")
		b.ReportMetric(requests("history", "503")+requests("orders", "503"), "503s")
		b.Logf("%d entries, %d events: %v (%.0f entries/s); %.0f history + %.0f orders requests; entries / (rate_limit x 100) = %.0f s",
			sim.entries, events, took.Round(time.Second), float64(sim.entries)/took.Seconds(), hist, orders, float64(sim.entries)/(acct.RateLimit*100))
	}
}

// BenchmarkIdlePoll is one poll of an account with nothing new (the look-back
// window retired): one history request and no write. Its allocations are
// most of what an instance with many accounts spends per poll.
//
//	go test -run='^$' -bench=IdlePoll -benchmem ./internal/poll/
func BenchmarkIdlePoll(b *testing.B) {
	h := newHarness(b, harnessOptions{seed: 5})
	h.crm.RandomWalk(rand.New(rand.NewPCG(5, 1)), 10, 50)
	h.drain()
	h.clock.Advance(time.Hour)
	h.poll()
	h.poll()
	if st := h.state(); len(st.Marks) != 0 {
		b.Fatalf("marks %v left: the polls are not idle", st.Marks)
	}
	ctx := context.Background()
	for b.Loop() {
		if err := h.p.Poll(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
