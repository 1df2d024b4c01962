package deliver

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/gcpace"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// benchConcurrency is the default webhook concurrency, used by both the
// durable and the bare benchmark so their rates compare.
const benchConcurrency = 4

// sink is a loopback receiver that reads the body and answers 200.
func sink(b *testing.B, seen func(r *http.Request)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if seen != nil {
			seen(r)
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkDeliverDurable: b.N events committed to the outbox (polls of 100
// events) and delivered through the Dispatcher to a loopback receiver,
// until every delivered mark is in the file. Compare events/s with
// BenchmarkBareLoopbackPOST.
func BenchmarkDeliverDurable(b *testing.B) {
	b.Cleanup(gcpace.Start()) // as the daemon runs
	srv := sink(b, nil)
	st := openStore(b, "")
	wh := webhook(srv.URL)
	wh.Concurrency = benchConcurrency
	d := New(st, metrics.New(), slog.New(slog.DiscardHandler), Options{})
	d.Update([]config.Account{account("ghana", wh)})
	d.Start(b.Context())
	b.Cleanup(func() { _ = d.Shutdown(b.Context()) })

	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		enqueue(b, st, "ghana", []string{"1"}, int64(i+1), min(100, b.N-i), 1000)
		d.Notify("ghana")
	}
	for pendingCount(b, st, "ghana") > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBareLoopbackPOST: the same bodies POSTed by a plain net/http
// client with the same concurrency: the ceiling of this machine.
func BenchmarkBareLoopbackPOST(b *testing.B) {
	b.Cleanup(gcpace.Start()) // the same garbage collector setting as the durable benchmark
	srv := sink(b, nil)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		body, err := json.Marshal(testEvent("ghana", int64(i+1), 1000+int64(i%1000)))
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	c := &http.Client{Transport: tr}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				resp, err := c.Post(srv.URL, "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAddedLatency: one event committed every 10 ms (100 events/s);
// reports the time from the commit's return to the request reaching the
// receiver, p50 and p99 in milliseconds. Run with -benchtime=1000x or more
// for a meaningful p99.
func BenchmarkAddedLatency(b *testing.B) {
	arrived := make([]atomic.Int64, b.N+1) // unix nanoseconds by history id
	var count atomic.Int64
	srv := sink(b, func(r *http.Request) {
		id := r.Header.Get("webhook-id")
		n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
		arrived[n].CompareAndSwap(0, time.Now().UnixNano())
		count.Add(1)
	})
	st := openStore(b, "")
	d := New(st, metrics.New(), slog.New(slog.DiscardHandler), Options{})
	d.Update([]config.Account{account("ghana", webhook(srv.URL))})
	d.Start(b.Context())
	b.Cleanup(func() { _ = d.Shutdown(b.Context()) })

	committed := make([]int64, b.N+1)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		<-tick.C
		ev := testEvent("ghana", int64(i), int64(i))
		err := st.CommitPoll("ghana", store.Commit{
			Events:   []store.NewEvent{{Event: ev, OrderID: int64(i), DetectedAt: time.Now()}},
			Webhooks: []string{"1"}, Cursor: int64(i), At: time.Now(),
		})
		if err != nil {
			b.Fatal(err)
		}
		committed[i] = time.Now().UnixNano()
		d.Notify("ghana")
	}
	for count.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	lat := make([]float64, 0, b.N)
	for i := 1; i <= b.N; i++ {
		lat = append(lat, float64(arrived[i].Load()-committed[i])/1e6)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
}
