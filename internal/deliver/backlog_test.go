package deliver

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

var backlogSize = flag.Int("backlog", 36_000, "BenchmarkBacklog: pending events while the receiver is down")

// outage is the shortest time BenchmarkBacklog keeps the receiver down:
// long enough for the dispatcher to see an outage, not a blip.
const outage = 20 * time.Second

// backlogOrder is a realistic order of about 1.5 KB.
var backlogOrder = func() string {
	var b strings.Builder
	b.WriteString(`{"id":%d,"number":"%dA","site":"main","status":"approved","createdAt":"2026-11-23 10:00:00",`)
	b.WriteString(`"customer":{"id":77,"firstName":"Ama","lastName":"Mensah","email":"ama@example.com","phones":[{"number":"+233200000000"}]},`)
	b.WriteString(`"delivery":{"code":"courier","cost":15,"address":{"city":"Accra","text":"12 Independence Ave, Accra, Ghana"}},`)
	b.WriteString(`"items":[`)
	for i := range 6 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%d,"offer":{"id":%d,"name":"Product line item number %d with a long name","article":"ART-%05d"},"quantity":%d,"initialPrice":%d.50}`, 900+i, 5000+i, i, i, i+1, 100+i)
	}
	b.WriteString(`],"payments":{"1":{"type":"cash","amount":300,"status":"not-paid"}},"customFields":{"note":"none"},"totalSumm":615.5}`)
	return b.String()
}()

// latencies keeps durations and reports percentiles in milliseconds.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *latencies) pct(p float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / 1e6
}

// BenchmarkBacklog: a receiver down while events pile up, then back.
// Reports, beside the drain rate, the latency of a poll-sized commit (10
// events) and of the admin status query with an empty outbox, with the
// backlog, and while it drains; the file size after the drain and after
// compaction; the heap in use at the end of the drain. -backlog sets the
// size (36,000 by default; 1,000,000 for the long run):
//
//	go test -run '^$' -bench Backlog -benchtime 1x -timeout 60m ./internal/deliver/ -backlog 1000000
func BenchmarkBacklog(b *testing.B) {
	for b.Loop() {
		runBacklog(b, *backlogSize)
	}
}

func runBacklog(b *testing.B, n int) {
	dir, err := os.MkdirTemp("", "backlog") // short: a unix socket lives here
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, store.FileName)
	st, err := store.Open(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var up atomic.Bool
	var delivered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
	}))
	b.Cleanup(srv.Close)
	acct := account("acct", webhook(srv.URL))
	cfg := &config.Config{StateDir: dir, AdminSocket: filepath.Join(dir, "admin.sock"), Accounts: []config.Account{acct}}
	adm := admin.NewServer(st, cfg, admin.Hooks{}, slog.New(slog.DiscardHandler))
	if err := adm.Start(cfg.AdminSocket); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = adm.Shutdown(context.Background()) })

	var hid atomic.Int64
	var d *Dispatcher
	commitN := func(k int) time.Duration {
		evs := make([]store.NewEvent, k)
		for i := range evs {
			h := hid.Add(1)
			oid := h%5000 + 1
			ev := event.Event{ID: event.ID("acct", h), Type: event.StatusChanged, Account: "acct",
				Change: event.Change{HistoryID: h, Field: "status", OldValue: "new", NewValue: "approved", Source: "user", CreatedAt: "2026-11-23 10:00:00"},
				Order:  json.RawMessage(fmt.Sprintf(backlogOrder, oid, oid))}
			evs[i] = store.NewEvent{Event: ev, OrderID: oid, DetectedAt: time.Now()}
		}
		start := time.Now()
		if err := st.CommitPoll("acct", store.Commit{Events: evs, Webhooks: []string{"1"}, Cursor: hid.Load(), At: time.Now()}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if d != nil {
			d.Notify("acct") // as the poller does after a commit
		}
		return took
	}
	status := func() time.Duration {
		start := time.Now()
		if _, err := admin.Status(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// probe measures 100 poll-sized commits and 100 status queries, one
	// of each every 20 ms.
	probe := func() (commits, statuses *latencies) {
		commits, statuses = &latencies{}, &latencies{}
		for range 100 {
			commits.add(commitN(10))
			statuses.add(status())
			time.Sleep(20 * time.Millisecond)
		}
		return commits, statuses
	}

	emptyC, emptyS := probe()

	// The receiver is down: the dispatcher keeps failing while the
	// backlog builds up (polls of 1,000 events for speed).
	d = New(st, metrics.New(), slog.New(slog.DiscardHandler), Options{})
	d.Update([]config.Account{acct})
	d.Start(context.Background())
	fillStart := time.Now()
	for int(hid.Load()) < n {
		commitN(min(1000, n-int(hid.Load())))
	}
	fill := time.Since(fillStart)
	time.Sleep(time.Until(fillStart.Add(outage))) // an outage, not a blip
	b.Logf("%d events pending after %v", hid.Load(), fill.Round(time.Millisecond))
	backC, backS := probe()

	// The receiver is back: drain, probing all along, until the backlog
	// is delivered; then wait for the last probes.
	up.Store(true)
	drainStart := time.Now()
	backlog := hid.Load()
	drainC, drainS := &latencies{}, &latencies{}
	var maxStatus time.Duration
	for delivered.Load() < backlog {
		drainC.add(commitN(10))
		s := status()
		drainS.add(s)
		maxStatus = max(maxStatus, s)
		time.Sleep(100 * time.Millisecond)
	}
	for {
		if p, _, _ := st.Counts("acct"); p == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	drain := time.Since(drainStart)
	b.Logf("drained in %v", drain.Round(time.Millisecond))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if err := d.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	total := hid.Load()
	if got := delivered.Load(); got < total {
		b.Fatalf("%d of %d events delivered", got, total)
	}
	if err := adm.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	before, after, err := store.Compact(path, time.Second)
	if err != nil {
		b.Fatal(err)
	}

	b.ReportMetric(float64(n)/fill.Seconds(), "fill-events/s")
	b.ReportMetric(float64(total)/drain.Seconds(), "drain-events/s")
	b.ReportMetric(emptyC.pct(0.5), "commit-p50-ms-empty")
	b.ReportMetric(emptyC.pct(0.99), "commit-p99-ms-empty")
	b.ReportMetric(backC.pct(0.5), "commit-p50-ms-backlog")
	b.ReportMetric(backC.pct(0.99), "commit-p99-ms-backlog")
	b.ReportMetric(drainC.pct(0.5), "commit-p50-ms-drain")
	b.ReportMetric(drainC.pct(0.99), "commit-p99-ms-drain")
	b.ReportMetric(emptyS.pct(0.99), "status-p99-ms-empty")
	b.ReportMetric(backS.pct(0.99), "status-p99-ms-backlog")
	b.ReportMetric(drainS.pct(0.99), "status-p99-ms-drain")
	b.ReportMetric(float64(maxStatus)/1e6, "status-max-ms-drain")
	b.ReportMetric(float64(before)/1e6, "file-MB-drained")
	b.ReportMetric(float64(after)/1e6, "file-MB-compacted")
	b.ReportMetric(float64(ms.HeapInuse)/1e6, "heap-MB-drain-end")
}
