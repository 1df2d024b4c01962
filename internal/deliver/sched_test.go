package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// fakeRun drives a Dispatcher's scheduler without goroutines or a real
// clock: it calls Next at the fake time, settles every unit of work with
// outcome (through the same record and removeChunk code the attempt
// goroutines run) and jumps the clock to the next wake when nothing is
// startable. Each round of attempts takes step of fake time.
type fakeRun struct {
	d       *Dispatcher
	now     time.Time
	step    time.Duration
	outcome func(it store.Item) (Result, error)
	sent    []sent // every attempt, in order
	maxOut  int    // most units started at once
}

type sent struct {
	it store.Item
	at time.Time
	ok bool
}

func newFakeRun(t *testing.T, st *store.Store, opts Options, outcome func(store.Item) (Result, error), accounts ...config.Account) *fakeRun {
	t.Helper()
	f := &fakeRun{now: t0, step: time.Millisecond, outcome: outcome}
	opts.Clock = fakeRunClock{f}
	f.d = New(st, metrics.New(), slog.New(slog.DiscardHandler), opts)
	f.d.Update(accounts)
	f.d.apply()
	return f
}

// fakeRunClock reads a fakeRun's time, wall and monotonic alike.
type fakeRunClock struct{ f *fakeRun }

func (c fakeRunClock) Read() (time.Time, time.Duration) { return c.f.now, c.f.now.Sub(t0) }

// run settles work until cond holds (true: stop) or the fake clock passes
// until.
func (f *fakeRun) run(t *testing.T, until time.Time, cond func() bool) {
	t.Helper()
	for !cond() {
		work, wake := f.d.sched.Next(f.now)
		if len(work) == 0 {
			if wake.IsZero() || wake.After(until) {
				return
			}
			f.now = wake
			continue
		}
		f.maxOut = max(f.maxOut, len(work))
		for _, w := range work {
			var r result
			if w.remove {
				r = f.d.removeChunk(w)
			} else {
				res, err := f.outcome(w.item)
				f.sent = append(f.sent, sent{it: w.item, at: f.now, ok: err == nil})
				r = f.record(t, w, res, err)
			}
			f.d.sched.Done(r, f.now)
		}
		f.now = f.now.Add(f.step)
		if f.now.After(until) {
			return
		}
	}
}

// record stores an outcome as the Dispatcher does. With nothing else
// committing, a success's mark is reported before record returns.
func (f *fakeRun) record(t *testing.T, w *work, res Result, err error) result {
	t.Helper()
	var r *result
	f.d.record(w, res, err, f.now, func(got result) { r = &got })
	if r == nil {
		t.Fatal("the outcome was not reported")
	}
	return *r
}

// orderIDs returns the order ids 1..n.
func orderIDs(n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	return ids
}

// commitOrders commits one event per order id, detected at the fake time.
func commitOrders(t *testing.T, st *store.Store, account string, webhooks []string, now time.Time, firstHID int64, orders ...int64) {
	t.Helper()
	evs := make([]store.NewEvent, len(orders))
	for i, oid := range orders {
		hid := firstHID + int64(i)
		evs[i] = store.NewEvent{Event: testEvent(account, hid, oid), OrderID: oid, DetectedAt: now}
	}
	if err := st.CommitPoll(account, store.Commit{Events: evs, Webhooks: webhooks, Cursor: firstHID + int64(len(orders)), At: now}); err != nil {
		t.Fatal(err)
	}
}

var errDown = fmt.Errorf("%w: 500", ErrStatus)

// 1,100 orders whose deliveries always fail, then one healthy order: the
// healthy order's event is delivered before the first retry of any
// failing one, within the first second of fake time, while the scheduler
// holds nothing but what is in flight.
func TestSchedulerHeadOfLine(t *testing.T) {
	st := openStore(t, "")
	failing := orderIDs(1100)
	commitOrders(t, st, "ghana", []string{"1"}, t0, 1, failing...)
	const healthy = 5000
	commitOrders(t, st, "ghana", []string{"1"}, t0.Add(time.Millisecond), 2000, healthy)
	outcome := func(it store.Item) (Result, error) {
		if it.OrderID >= healthy {
			return Result{Status: 200}, nil
		}
		return Result{Status: 500}, errDown
	}
	f := newFakeRun(t, st, Options{}, outcome, account("ghana", webhook("http://unused")))
	var deliveredAt time.Time
	f.run(t, t0.Add(time.Hour), func() bool {
		for _, s := range f.sent {
			if s.ok {
				deliveredAt = s.at
				return true
			}
		}
		return false
	})
	if deliveredAt.IsZero() {
		t.Fatalf("the healthy order was not delivered in an hour of fake time (%d attempts)", len(f.sent))
	}
	if took := deliveredAt.Sub(t0); took > time.Second {
		t.Errorf("the healthy order waited %v behind failing ones", took)
	}
	attempted := map[int64]int{}
	for _, s := range f.sent {
		attempted[s.it.OrderID]++
	}
	if len(attempted) != 1101 {
		t.Errorf("%d orders attempted before the healthy one was delivered, want all 1,101 once", len(attempted))
	}
	for oid, n := range attempted {
		if n != 1 {
			t.Errorf("order %d attempted %d times before a fresh event was sent", oid, n)
		}
	}
	if f.maxOut > 4 {
		t.Errorf("%d attempts in flight at once, concurrency is 4", f.maxOut)
	}
	if p, _, _ := st.Counts("ghana"); p != 1100 {
		t.Errorf("%d pending, want the 1,100 failing ones", p)
	}
	// Waiting for their retries, they take no slot: a new event is sent
	// at once.
	commitOrders(t, st, "ghana", []string{"1"}, f.now, 3000, healthy+1)
	f.d.sched.Notify("ghana")
	before := len(f.sent)
	f.run(t, f.now.Add(time.Second), func() bool { return len(f.sent) > before })
	if len(f.sent) != before+1 || f.sent[before].it.OrderID != healthy+1 || !f.sent[before].ok {
		t.Errorf("the next fresh event was not sent at once: %+v", f.sent[before:])
	}
}

// An order's events go one at a time, in Seq order, even when its head
// keeps failing; other orders are not held up.
func TestSchedulerOrderWaitsForItsHead(t *testing.T) {
	st := openStore(t, "")
	commitOrders(t, st, "ghana", []string{"1"}, t0, 1, 7, 7, 8, 7)
	fails := 3
	outcome := func(it store.Item) (Result, error) {
		if it.Event.Change.HistoryID == 1 && fails > 0 {
			fails--
			return Result{Status: 503}, errDown
		}
		return Result{Status: 200}, nil
	}
	f := newFakeRun(t, st, Options{Backoff: func(int) time.Duration { return time.Second }}, outcome, account("ghana", webhook("http://unused")))
	f.run(t, t0.Add(time.Hour), func() bool { p, _, _ := st.Counts("ghana"); return p == 0 })
	var order7 []int64
	var first8 time.Time
	for _, s := range f.sent {
		if s.it.OrderID == 7 {
			order7 = append(order7, s.it.Event.Change.HistoryID)
		} else if first8.IsZero() {
			first8 = s.at
		}
	}
	if want := []int64{1, 1, 1, 1, 2, 4}; !slices.Equal(order7, want) {
		t.Errorf("order 7 attempts %v, want %v", order7, want)
	}
	if first8 != t0 {
		t.Errorf("order 8 first sent at %v, want at once (%v)", first8, t0)
	}
}

func TestDecide(t *testing.T) {
	wh := config.Webhook{Retry: config.Retry{MaxAttempts: 5, MaxAge: time.Hour}}
	backoff := func(int) time.Duration { return 10 * time.Minute }
	tests := []struct {
		name       string
		it         store.Item
		res        Result
		wantReason string
		wantNext   [2]time.Duration // bounds of NextAttempt - now
	}{
		{"first failure", store.Item{}, Result{Status: 500}, "", [2]time.Duration{8 * time.Minute, 12 * time.Minute}},
		{"Retry-After longer than the backoff", store.Item{}, Result{Status: 503, RetryAfter: 20 * time.Minute}, "", [2]time.Duration{20 * time.Minute, 20 * time.Minute}},
		{"Retry-After shorter than the backoff", store.Item{}, Result{Status: 429, RetryAfter: time.Second}, "", [2]time.Duration{8 * time.Minute, 12 * time.Minute}},
		{"410", store.Item{}, Result{Status: 410}, ReasonGone, [2]time.Duration{}},
		{"max attempts", store.Item{Attempts: 4, FirstAttempt: t0}, Result{Status: 500}, ReasonMaxAttempts, [2]time.Duration{}},
		{"max age passed", store.Item{Attempts: 1, FirstAttempt: t0.Add(-time.Hour)}, Result{Status: 500}, ReasonMaxAge, [2]time.Duration{}},
		{"backoff cut to max age", store.Item{Attempts: 1, FirstAttempt: t0.Add(-55 * time.Minute)}, Result{Status: 500}, "", [2]time.Duration{5 * time.Minute, 5 * time.Minute}},
		{"Retry-After past max age", store.Item{Attempts: 1, FirstAttempt: t0.Add(-10 * time.Minute)}, Result{Status: 503, RetryAfter: 365 * 24 * time.Hour}, ReasonMaxAge, [2]time.Duration{}},
		{"Retry-After up to max age", store.Item{Attempts: 1, FirstAttempt: t0.Add(-10 * time.Minute)}, Result{Status: 503, RetryAfter: 50 * time.Minute}, "", [2]time.Duration{50 * time.Minute, 50 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := tt.it
			reason := decide(wh, &it, tt.res, fmt.Errorf("%w: %d", ErrStatus, tt.res.Status), t0, backoff)
			if reason != tt.wantReason {
				t.Fatalf("reason %q, want %q", reason, tt.wantReason)
			}
			if it.Attempts != tt.it.Attempts+1 || it.LastStatus != tt.res.Status || it.LastError == "" {
				t.Errorf("bookkeeping %+v", it)
			}
			if want := cmpTime(tt.it.FirstAttempt, t0); !it.FirstAttempt.Equal(want) {
				t.Errorf("first attempt %v, want %v", it.FirstAttempt, want)
			}
			if reason != "" {
				if !it.NextAttempt.IsZero() {
					t.Errorf("a dead letter got a next attempt %v", it.NextAttempt)
				}
				return
			}
			if wait := it.NextAttempt.Sub(t0); wait < tt.wantNext[0] || wait > tt.wantNext[1] {
				t.Errorf("next attempt in %v, want %v..%v", wait, tt.wantNext[0], tt.wantNext[1])
			}
			if end := it.FirstAttempt.Add(wh.Retry.MaxAge); it.NextAttempt.After(end) {
				t.Errorf("next attempt %v after first attempt + max_age %v", it.NextAttempt, end)
			}
		})
	}
}

func cmpTime(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

// `Retry-After: 31536000` with max_age 2s: dead-lettered at the first
// attempt with its status and the reason, alerted.
func TestSchedulerRetryAfterPastMaxAge(t *testing.T) {
	st := openStore(t, "")
	commitOrders(t, st, "ghana", []string{"1"}, t0, 1, 7)
	wh := webhook("http://unused")
	wh.Retry.MaxAge = 2 * time.Second
	al := &alerts{}
	outcome := func(store.Item) (Result, error) {
		return Result{Status: 503, RetryAfter: 31536000 * time.Second}, fmt.Errorf("%w: 503", ErrStatus)
	}
	f := newFakeRun(t, st, Options{Alerter: al}, outcome, account("ghana", wh))
	f.run(t, t0.Add(time.Hour), func() bool { _, d, _ := st.Counts("ghana"); return d == 1 })
	dead, _ := st.Dead("ghana")
	if len(dead) != 1 || len(f.sent) != 1 {
		t.Fatalf("%d dead letters after %d attempts, want 1 after 1", len(dead), len(f.sent))
	}
	if it := dead[0]; it.DeadReason != ReasonMaxAge || it.LastStatus != 503 || !it.DeadAt.Equal(t0) ||
		!strings.Contains(it.LastError, "Retry-After") {
		t.Errorf("dead letter %+v", it)
	}
	if al.count() != 1 {
		t.Errorf("%d alerts, want 1", al.count())
	}
}

// The same through real HTTP and the running Dispatcher.
func TestRetryAfterPastMaxAge(t *testing.T) {
	rcv := newReceiver(t, func(string, int) (int, string, http.Header) {
		return http.StatusServiceUnavailable, "", http.Header{"Retry-After": {"31536000"}}
	})
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 3, 3)
	wh := webhook(rcv.srv.URL)
	wh.Retry.MaxAge = 2 * time.Second
	startDispatcher(t, st, Options{}, account("ghana", wh))
	eventually(t, "dead letters", func() bool { _, d, _ := st.Counts("ghana"); return d == 3 })
	dead, _ := st.Dead("ghana")
	for _, it := range dead {
		if it.DeadReason != ReasonMaxAge || it.Attempts != 1 || it.LastStatus != 503 {
			t.Errorf("dead letter %+v", it)
		}
	}
}

// A renamed webhook's queue is dead-lettered, never sent to the webhook
// that took its place; reordering webhooks changes nothing; accounts that
// left the config keep their queues untouched. Also at start.
func TestRemovedAndRenamedWebhooks(t *testing.T) {
	st := openStore(t, "")
	commitOrders(t, st, "ghana", []string{"a", "b"}, t0, 1, 1, 2, 3)
	commitOrders(t, st, "kenya", []string{"k"}, t0, 1, 1)
	var mu sync.Mutex
	var urls []string
	outcome := func(it store.Item) (Result, error) {
		mu.Lock()
		defer mu.Unlock()
		urls = append(urls, it.Webhook)
		return Result{Status: 503}, errDown
	}
	wa, wb := webhook("http://a"), webhook("http://b")
	wa.Name, wb.Name = "a", "b"
	al := &alerts{}
	// At start: "b" is no longer in the config, kenya is not either.
	f := newFakeRun(t, st, Options{Alerter: al, Backoff: func(int) time.Duration { return time.Hour }}, outcome, account("ghana", wa))
	f.run(t, t0.Add(time.Minute), func() bool { return false })
	if slices.Contains(urls, "b") {
		t.Error("a removed webhook's events were sent")
	}
	qs, _ := st.QueueCounts("ghana")
	if want := []store.QueueCount{{Webhook: "a", Pending: 3}, {Webhook: "b", Dead: 3}}; !slices.Equal(qs, want) {
		t.Errorf("ghana queues %v, want %v", qs, want)
	}
	if al.count() != 3 {
		t.Errorf("%d alerts, want 3", al.count())
	}
	if qs, _ := st.QueueCounts("kenya"); len(qs) != 1 || qs[0].Pending != 1 {
		t.Errorf("an account that left the config was touched: %v", qs)
	}
	// Reordering (a and a new c): nothing is removed.
	wc := webhook("http://c")
	wc.Name = "c"
	f.d.sched.Update([]config.Account{account("ghana", wc, wa)})
	f.run(t, f.now.Add(time.Minute), func() bool { return false })
	if _, d, _ := st.Counts("ghana"); d != 3 {
		t.Errorf("%d dead letters after reordering, want still 3", d)
	}
	// Renaming a to c: a's events are dead-lettered, c gets none of them.
	urls = nil
	f.d.sched.Update([]config.Account{account("ghana", wc)})
	f.run(t, f.now.Add(time.Minute), func() bool { return false })
	if len(urls) != 0 {
		t.Errorf("renamed webhook's events sent to %v", urls)
	}
	if p, d, _ := st.Counts("ghana"); p != 0 || d != 6 {
		t.Errorf("after the rename: %d pending, %d dead; want 0, 6", p, d)
	}
	for _, it := range mustDead(t, st, "ghana") {
		if it.DeadReason != ReasonRemoved {
			t.Errorf("dead letter %s/%s reason %q", it.Webhook, it.Event.ID, it.DeadReason)
		}
	}
}

func mustDead(t *testing.T, st *store.Store, account string) []store.Item {
	t.Helper()
	d, err := st.Dead(account)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A removed webhook's events are dead-lettered only after its attempt in
// flight ended, and that attempt's outcome is kept.
func TestRemovalWaitsForInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.Header.Get("webhook-id")
		<-release
	}))
	defer srv.Close()
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 5, 1) // one order: one attempt at a time
	al := &alerts{}
	d, _ := startDispatcher(t, st, Options{Alerter: al}, account("ghana", webhook(srv.URL)))
	first := <-started
	d.Update([]config.Account{account("ghana")})
	time.Sleep(200 * time.Millisecond)
	if _, dead, _ := st.Counts("ghana"); dead != 0 {
		t.Fatalf("%d dead letters while an attempt is in flight", dead)
	}
	close(release)
	eventually(t, "dead letters", func() bool { _, dead, _ := st.Counts("ghana"); return dead == 4 })
	for _, it := range mustDead(t, st, "ghana") {
		if it.Event.ID == first {
			t.Errorf("the event in flight (delivered) was dead-lettered too")
		}
	}
	if p, _, _ := st.Counts("ghana"); p != 0 {
		t.Errorf("%d pending", p)
	}
	eventually(t, "alerts", func() bool { return al.count() == 4 })
}

// MaxInFlight caps attempts over all webhooks, besides each webhook's
// concurrency.
func TestGlobalCap(t *testing.T) {
	var now, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		now.Add(-1)
	}))
	defer srv.Close()
	st := openStore(t, "")
	var accts []config.Account
	for i := range 3 {
		name := fmt.Sprintf("acct%d", i)
		enqueue(t, st, name, []string{"1"}, 1, 12, 12)
		accts = append(accts, account(name, webhook(srv.URL)))
	}
	startDispatcher(t, st, Options{MaxInFlight: 2}, accts...)
	eventually(t, "all delivered", func() bool {
		for _, a := range accts {
			if pendingCount(t, st, a.Name) != 0 {
				return false
			}
		}
		return true
	})
	if p := peak.Load(); p != 2 {
		t.Errorf("at most %d requests at once, want the cap of 2", p)
	}
}

// Read-ahead never keeps the global cap from other webhooks: eight busy
// webhooks under a cap of 32 all start attempts in the first round, not
// the first two that could fill the cap with items held for later.
func TestReadAheadLeavesTheCapToOthers(t *testing.T) {
	st := openStore(t, "")
	var accts []config.Account
	for i := range 8 {
		name := fmt.Sprintf("acct%d", i)
		enqueue(t, st, name, []string{"1"}, 1, 40, 40)
		accts = append(accts, account(name, webhook("http://127.0.0.1:1")))
	}
	f := newFakeRun(t, st, Options{MaxInFlight: 32}, nil, accts...)
	work, _ := f.d.sched.Next(time.Now())
	served := map[string]int{}
	for _, w := range work {
		served[w.key.account]++
	}
	if len(work) < 20 || len(served) < 5 {
		t.Fatalf("first round started %d attempts for %d webhooks (%v); want at least 20 over at least 5", len(work), len(served), served)
	}
	if f.d.sched.InFlight() > 32 {
		t.Fatalf("%d units out, over the cap of 32", f.d.sched.InFlight())
	}
}

// 10,000 idle accounts cost no goroutine each: the Dispatcher runs one
// loop, and attempts only for work in flight.
func TestIdleAccountsCostNoGoroutines(t *testing.T) {
	st := openStore(t, "")
	accts := make([]config.Account, 10_000)
	for i := range accts {
		accts[i] = account(fmt.Sprintf("a%05d", i), webhook("http://127.0.0.1:1"))
	}
	before := runtime.NumGoroutine()
	d, _ := startDispatcher(t, st, Options{}, accts...)
	for i := 0; i < len(accts); i += 100 {
		d.Notify(accts[i].Name)
	}
	time.Sleep(300 * time.Millisecond)
	if extra := runtime.NumGoroutine() - before; extra > 5 {
		t.Errorf("%d goroutines for 10,000 idle accounts", extra)
	}
	d.mu.Lock()
	pending := d.updated
	d.mu.Unlock()
	if pending {
		t.Fatal("the loop has not applied the accounts yet")
	}
}

// A graceful Shutdown with a removal in progress stops between chunks; the
// next start finishes it.
func TestShutdownDuringRemoval(t *testing.T) {
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"old"}, 1, 2500, 100)
	m := metrics.New()
	d := New(st, m, slog.New(slog.DiscardHandler), Options{})
	d.Update([]config.Account{account("ghana", webhook("http://127.0.0.1:1"))})
	d.Start(t.Context())
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, dead, _ := st.Counts("ghana")
	if p+dead != 2500 {
		t.Fatalf("%d pending + %d dead, want 2500 in all", p, dead)
	}
	startDispatcher(t, st, Options{}, account("ghana", webhook("http://127.0.0.1:1")))
	eventually(t, "the removal finished", func() bool { _, dead, _ := st.Counts("ghana"); return dead == 2500 })
	if p, _, _ := st.Counts("ghana"); p != 0 {
		t.Errorf("%d pending", p)
	}
}

// Dead letters moved back by an operator are due at once and delivered in
// their order's place.
func TestRetriedDeadLettersDelivered(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	rcv := newReceiver(t, func(string, int) (int, string, http.Header) {
		if fail.Load() {
			return http.StatusGone, "", nil
		}
		return http.StatusOK, "", nil
	})
	st := openStore(t, "")
	ids := enqueue(t, st, "ghana", []string{"1"}, 1, 6, 2)
	d, _ := startDispatcher(t, st, Options{}, account("ghana", webhook(rcv.srv.URL)))
	eventually(t, "dead letters", func() bool { _, dead, _ := st.Counts("ghana"); return dead == len(ids) })
	fail.Store(false)
	if _, err := st.RetryDead("ghana", nil, anyWebhook); err != nil {
		t.Fatal(err)
	}
	d.Notify("ghana")
	eventually(t, "redelivery", func() bool { return len(rcv.delivered()) == len(ids) })
	checkOrder(t, rcv.delivered())
}

// The gauges follow every change from the counters.
func TestGauges(t *testing.T) {
	rcv := newReceiver(t, func(id string, _ int) (int, string, http.Header) {
		if id == event.ID("ghana", 1) {
			return http.StatusGone, "", nil
		}
		return http.StatusOK, "", nil
	})
	st := openStore(t, "")
	ids := enqueue(t, st, "ghana", []string{"1"}, 1, 10, 10)
	_, m := startDispatcher(t, st, Options{}, account("ghana", webhook(rcv.srv.URL)))
	eventually(t, "deliveries", func() bool { return len(rcv.delivered()) == len(ids)-1 })
	eventually(t, "gauges", func() bool {
		return testutil.ToFloat64(m.OutboxPending.WithLabelValues("ghana")) == 0 &&
			testutil.ToFloat64(m.DeadLetters.WithLabelValues("ghana")) == 1
	})
}

// A store that fails the outcome's write makes the attempt count as not
// made: the event stays due and is sent again, never lost.
func TestStoreFailureResends(t *testing.T) {
	st := openStore(t, "")
	commitOrders(t, st, "ghana", []string{"1"}, t0, 1, 7)
	f := newFakeRun(t, st, Options{}, nil, account("ghana", webhook("http://unused")))
	work, _ := f.d.sched.Next(f.now)
	if len(work) != 1 {
		t.Fatalf("%d units of work", len(work))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r := f.record(t, work[0], Result{Status: 200}, nil)
	if r.kind != storeFailed {
		t.Fatalf("result %v, want storeFailed", r.kind)
	}
	f.d.sched.Done(r, f.now)
	if got, wake := f.d.sched.Next(f.now); len(got) != 0 || !wake.Equal(f.now.Add(storeRetry)) {
		t.Errorf("after a store failure: %d units now, wake at %v; want none before %v", len(got), wake, f.now.Add(storeRetry))
	}
	if !errors.Is(st.Ping(), store.ErrClosed) {
		t.Error("store still open")
	}
}

// A receiver down for a minute, then back: while it is down every retry
// waits for its backoff; the first success after the failures makes the
// retries due at once, so the backlog drains without waiting for them.
func TestSchedulerRecovery(t *testing.T) {
	st := openStore(t, "")
	orders := orderIDs(200)
	commitOrders(t, st, "ghana", []string{"1"}, t0, 1, orders...)
	up := false
	outcome := func(store.Item) (Result, error) {
		if up {
			return Result{Status: 200}, nil
		}
		return Result{Status: 502}, errDown
	}
	f := newFakeRun(t, st, Options{}, outcome, account("ghana", webhook("http://unused")))
	f.run(t, t0.Add(time.Minute), func() bool { return false })
	last := map[int64]time.Time{}
	for _, s := range f.sent {
		if prev, ok := last[s.it.OrderID]; ok && s.at.Sub(prev) < 4*time.Second {
			t.Fatalf("order %d retried %v after its failure, before its backoff", s.it.OrderID, s.at.Sub(prev))
		}
		last[s.it.OrderID] = s.at
	}
	if len(f.sent) < 400 {
		t.Fatalf("%d attempts while down, want every event retried", len(f.sent))
	}
	up = true
	back := f.now
	commitOrders(t, st, "ghana", []string{"1"}, f.now, 1000, 9999)
	f.d.sched.Notify("ghana")
	f.run(t, back.Add(time.Hour), func() bool { p, _, _ := st.Counts("ghana"); return p == 0 })
	if p, _, _ := st.Counts("ghana"); p != 0 {
		t.Fatalf("%d pending an hour after the receiver came back", p)
	}
	if took := f.now.Sub(back); took > time.Second {
		t.Errorf("the backlog drained %v after the receiver came back; its retries were due later", took)
	}
}

// Recovery starts with a success after an outage and ends with a failure,
// but not with one of an attempt sent before that success (it answered
// late, about the outage).
func TestRecoveryIgnoresStaleFailures(t *testing.T) {
	f := newFakeRun(t, openStore(t, ""), Options{}, nil, account("ghana", webhook("http://unused")))
	s := f.d.sched
	g := s.groups[groupKey{"ghana", "1"}]
	var seq uint64
	done := func(ok bool, sent, answered time.Duration) {
		seq++
		g.inflight[seq] = 0
		g.sending++
		s.inflight++
		s.Done(result{w: &work{g: g, item: store.Item{Seq: seq}}, ok: ok, failed: !ok, at: t0.Add(sent)}, t0.Add(answered))
	}
	for i := range recoverAfter {
		d := time.Duration(i) * 3 * time.Second
		done(false, d, d)
	}
	if g.recovering {
		t.Fatal("recovering before any success")
	}
	done(true, 13*time.Second, 13*time.Second)
	if !g.recovering {
		t.Fatal("a success after an outage did not start the recovery")
	}
	done(false, 12*time.Second, 14*time.Second) // sent before the success
	if !g.recovering {
		t.Error("a stale failure ended the recovery")
	}
	done(false, 15*time.Second, 15*time.Second)
	if g.recovering {
		t.Error("a fresh failure did not end the recovery")
	}
	// A short burst of failures (under recoverSpan) is no outage.
	done(true, 19*time.Second, 19*time.Second)
	for i := range recoverAfter {
		d := 20*time.Second + time.Duration(i)*time.Second
		done(false, d, d)
	}
	done(true, 25*time.Second, 25*time.Second)
	if g.recovering {
		t.Error("failures over 5s started a recovery")
	}
	if s.InFlight() != 0 || g.sending != 0 || len(g.inflight) != 0 {
		t.Errorf("in flight %d, sending %d, %d items", s.InFlight(), g.sending, len(g.inflight))
	}
}
