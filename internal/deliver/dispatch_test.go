package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), store.FileName)
	}
	st, err := store.Open(path, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// enqueue commits events for history ids first..first+n-1, spread over
// orders round-robin, as one poll step would.
func enqueue(t testing.TB, st *store.Store, account string, webhooks []string, first int64, n, orders int) []string {
	t.Helper()
	evs := make([]store.NewEvent, n)
	ids := make([]string, n)
	for i := range evs {
		hid := first + int64(i)
		oid := 1000 + hid%int64(orders)
		evs[i] = store.NewEvent{Event: testEvent(account, hid, oid), OrderID: oid, DetectedAt: time.Now()}
		ids[i] = evs[i].Event.ID
	}
	if err := st.CommitPoll(account, store.Commit{Events: evs, Webhooks: webhooks, Cursor: first + int64(n), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// receiver records every request and answers with respond.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []hit
	respond func(id string, attempt int) (status int, body string, header http.Header)
	arrived chan struct{}
}

type hit struct {
	id, order string
	path      string
	attempt   int // 1-based, per webhook-id
	status    int
	at        time.Time
	header    http.Header
}

func newReceiver(t testing.TB, respond func(id string, attempt int) (int, string, http.Header)) *receiver {
	r := &receiver{respond: respond, arrived: make(chan struct{}, 1<<16)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	attempt := 1
	for _, h := range r.got {
		if h.id == id {
			attempt++
		}
	}
	status, text, hdr := http.StatusOK, "", http.Header(nil)
	if r.respond != nil {
		status, text, hdr = r.respond(id, attempt)
	}
	r.got = append(r.got, hit{id: id, order: orderOf(string(body)), path: req.URL.Path, attempt: attempt, status: status, at: time.Now(), header: req.Header})
	r.mu.Unlock()
	for k, vs := range hdr {
		w.Header()[k] = vs
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
	r.arrived <- struct{}{}
}

func (r *receiver) hits() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// delivered returns the ids answered with 2xx, in arrival order.
func (r *receiver) delivered() []hit {
	var out []hit
	for _, h := range r.hits() {
		if h.status/100 == 2 {
			out = append(out, h)
		}
	}
	return out
}

func webhook(url string) config.Webhook {
	return config.Webhook{Name: "1", URL: url, Method: "POST", Format: FormatJSON, Timeout: 5 * time.Second,
		Concurrency: 4, Retry: config.Retry{MaxAttempts: 12, MaxAge: 72 * time.Hour}}
}

// anyWebhook accepts every webhook as configured.
func anyWebhook(string, string) bool { return true }

func account(name string, whs ...config.Webhook) config.Account {
	return config.Account{Name: name, Webhooks: whs}
}

// tiny is a test backoff: retries come quickly, in the schedule's order.
func tiny(attempt int) time.Duration { return time.Duration(attempt) * time.Millisecond }

func startDispatcher(t testing.TB, st *store.Store, opts Options, accounts ...config.Account) (*Dispatcher, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	if opts.Backoff == nil {
		opts.Backoff = tiny
	}
	d := New(st, m, slog.New(slog.DiscardHandler), opts)
	d.Update(accounts)
	d.Start(t.Context())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	return d, m
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pendingCount(t testing.TB, st *store.Store, account string) int {
	t.Helper()
	p, _, err := st.Counts(account)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkOrder fails when the first successful delivery of an order's events
// is not in history id order.
func checkOrder(t *testing.T, hits []hit) {
	t.Helper()
	last := make(map[string]string)
	seen := make(map[string]bool)
	for _, h := range hits {
		if seen[h.id] {
			continue
		}
		seen[h.id] = true
		if prev, ok := last[h.order]; ok && idLess(h.id, prev) {
			t.Errorf("order %s: %s delivered after %s", h.order, h.id, prev)
		}
		last[h.order] = h.id
	}
}

func idLess(a, b string) bool {
	var x, y int64
	_, _ = fmt.Sscanf(a[strings.LastIndexByte(a, '-')+1:], "%d", &x)
	_, _ = fmt.Sscanf(b[strings.LastIndexByte(b, '-')+1:], "%d", &y)
	return x < y
}

// A receiver failing the first 3 attempts of every event still gets every
// event, each order's in order, with the same webhook-id on every attempt.
func TestFlakyReceiver(t *testing.T) {
	rcv := newReceiver(t, func(_ string, attempt int) (int, string, http.Header) {
		if attempt <= 3 {
			return http.StatusServiceUnavailable, "busy", nil
		}
		return http.StatusOK, "", nil
	})
	st := openStore(t, "")
	ids := enqueue(t, st, "ghana", []string{"1"}, 1, 60, 6)
	d, m := startDispatcher(t, st, Options{}, account("ghana", webhook(rcv.srv.URL)))
	d.Notify("ghana")
	eventually(t, "all deliveries", func() bool { return len(rcv.delivered()) == len(ids) })
	eventually(t, "an empty outbox", func() bool { return pendingCount(t, st, "ghana") == 0 })

	hits := rcv.hits()
	if len(hits) != 4*len(ids) {
		t.Errorf("%d requests, want %d", len(hits), 4*len(ids))
	}
	got := make(map[string]int)
	for _, h := range rcv.delivered() {
		got[h.id]++
		if h.attempt != 4 {
			t.Errorf("%s delivered on attempt %d", h.id, h.attempt)
		}
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s delivered %d times", id, got[id])
		}
	}
	// Strict per-order order over every request, failed ones included: an
	// order's next event is never sent before the previous one succeeded.
	lastOK := make(map[string]string)
	for _, h := range hits {
		if prev, ok := lastOK[h.order]; ok && idLess(h.id, prev) {
			t.Errorf("order %s: %s sent after %s was delivered", h.order, h.id, prev)
		}
		if h.status == 200 {
			lastOK[h.order] = h.id
		}
	}
	for _, h := range hits {
		if idx := slices.IndexFunc(hits, func(x hit) bool {
			return x.order == h.order && x.status != 200 && idLess(x.id, h.id) && x.at.After(h.at)
		}); idx >= 0 {
			t.Errorf("order %s: %s sent before %s finished", h.order, h.id, hits[idx].id)
			break
		}
	}
	if v := testutil.ToFloat64(m.DeliveriesTotal.WithLabelValues("ghana", "1", "ok")); v != float64(len(ids)) {
		t.Errorf("ok deliveries metric %v", v)
	}
	if v := testutil.ToFloat64(m.DeliveriesTotal.WithLabelValues("ghana", "1", "retry")); v != float64(3*len(ids)) {
		t.Errorf("retry metric %v", v)
	}
	if n := testutil.CollectAndCount(m.DeliveryLatency); n != 1 {
		t.Errorf("latency series %d", n)
	}
}

// alerts records dead letters for tests.
type alerts struct {
	mu    sync.Mutex
	items []store.Item
}

func (a *alerts) DeadLetter(_ context.Context, it store.Item) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.items = append(a.items, it)
}

func (a *alerts) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.items)
}

// A receiver that is down: events are retried, dead-lettered after
// max_attempts, and delivered after `dlq retry` once it is back.
func TestDownThenDeadLetterRetry(t *testing.T) {
	var mu sync.Mutex
	up := false
	rcv := newReceiver(t, func(string, int) (int, string, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return http.StatusOK, "", nil
		}
		return http.StatusBadGateway, "down", nil
	})
	st := openStore(t, "")
	ids := enqueue(t, st, "ghana", []string{"1"}, 1, 20, 4)
	wh := webhook(rcv.srv.URL)
	wh.Retry.MaxAttempts = 3
	al := &alerts{}
	d, m := startDispatcher(t, st, Options{Alerter: al}, account("ghana", wh))
	eventually(t, "dead letters", func() bool { _, dead, _ := st.Counts("ghana"); return dead == len(ids) })
	eventually(t, "alerts", func() bool { return al.count() == len(ids) })

	dead, err := st.Dead("ghana")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range dead {
		if it.Attempts != 3 || it.LastStatus != http.StatusBadGateway || it.DeadReason != ReasonMaxAttempts || it.FirstAttempt.IsZero() {
			t.Errorf("dead letter %s: attempts %d status %d reason %q", it.Event.ID, it.Attempts, it.LastStatus, it.DeadReason)
		}
	}
	if n := len(rcv.hits()); n != 3*len(ids) {
		t.Errorf("%d requests while down, want %d", n, 3*len(ids))
	}
	if v := testutil.ToFloat64(m.DeliveriesTotal.WithLabelValues("ghana", "1", "dead")); v != float64(len(ids)) {
		t.Errorf("dead metric %v", v)
	}
	eventually(t, "the dead letters gauge", func() bool {
		return testutil.ToFloat64(m.DeadLetters.WithLabelValues("ghana")) == float64(len(ids))
	})

	mu.Lock()
	up = true
	mu.Unlock()
	if _, err := st.RetryDead("ghana", nil, anyWebhook); err != nil {
		t.Fatal(err)
	}
	d.Notify("ghana")
	eventually(t, "redelivery", func() bool { return len(rcv.delivered()) == len(ids) })
	eventually(t, "an empty outbox", func() bool { return pendingCount(t, st, "ghana") == 0 })
	checkOrder(t, rcv.delivered())
}

// 410 Gone dead-letters at once; an order's next event goes on.
func TestGoneDeadLettersAtOnce(t *testing.T) {
	rcv := newReceiver(t, func(id string, _ int) (int, string, http.Header) {
		if id == "ghana-1" {
			return http.StatusGone, "", nil
		}
		return http.StatusOK, "", nil
	})
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 2, 1) // one order: ghana-1 then ghana-2
	startDispatcher(t, st, Options{}, account("ghana", webhook(rcv.srv.URL)))
	eventually(t, "the next event", func() bool { return len(rcv.delivered()) == 1 })
	dead, _ := st.Dead("ghana")
	if len(dead) != 1 || dead[0].Event.ID != "ghana-1" || dead[0].Attempts != 1 || dead[0].DeadReason != ReasonGone {
		t.Fatalf("dead letters %+v", dead)
	}
	if h := rcv.hits(); len(h) != 2 || h[0].id != "ghana-1" || h[1].id != "ghana-2" {
		t.Errorf("requests %v", h)
	}
}

// A 2xx without success_body is a failure; redirects are failures too and
// never followed.
func TestSuccessBodyAndRedirects(t *testing.T) {
	rcv := newReceiver(t, func(id string, attempt int) (int, string, http.Header) {
		switch {
		case id == "ghana-1" && attempt == 1:
			return http.StatusOK, "FAIL", nil
		case id == "ghana-2" && attempt == 1:
			return http.StatusFound, "", http.Header{"Location": {"/elsewhere?id=" + id}}
		}
		return http.StatusOK, "OK\n", nil
	})
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 2, 2)
	wh := webhook(rcv.srv.URL)
	wh.SuccessBody = "OK"
	startDispatcher(t, st, Options{}, account("ghana", wh))
	eventually(t, "an empty outbox", func() bool { return pendingCount(t, st, "ghana") == 0 })
	hits := rcv.hits()
	if len(hits) != 4 {
		t.Fatalf("%d requests, want 4 (each event retried once)", len(hits))
	}
	for _, h := range hits {
		if h.path != "/" {
			t.Errorf("redirect followed to %s", h.path)
		}
	}
}

// Retry-After longer than the backoff sets the next attempt.
func TestRetryAfterHonoured(t *testing.T) {
	rcv := newReceiver(t, func(_ string, attempt int) (int, string, http.Header) {
		if attempt == 1 {
			return http.StatusTooManyRequests, "", http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, "", nil
	})
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	startDispatcher(t, st, Options{}, account("ghana", webhook(rcv.srv.URL)))
	eventually(t, "the retry", func() bool { return len(rcv.delivered()) == 1 })
	h := rcv.hits()
	// The attempt's clock starts before the receiver's, so allow a little;
	// the backoff alone would retry within milliseconds.
	if gap := h[1].at.Sub(h[0].at); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, Retry-After said 1s", gap)
	}
}

// The schedule is durable: a new dispatcher over the same store waits for
// the stored NextAttempt, then sends.
func TestRestartKeepsSchedule(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusInternalServerError
	rcv := newReceiver(t, func(string, int) (int, string, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		return status, "", nil
	})
	path := filepath.Join(t.TempDir(), store.FileName)
	st := openStore(t, path)
	enqueue(t, st, "ghana", []string{"1"}, 1, 3, 3)
	hour := func(int) time.Duration { return time.Hour }
	acct := account("ghana", webhook(rcv.srv.URL))

	m := metrics.New()
	d1 := New(st, m, slog.New(slog.DiscardHandler), Options{Backoff: hour})
	d1.Update([]config.Account{acct})
	d1.Start(t.Context())
	var items []store.Item
	eventually(t, "three failed attempts", func() bool {
		items, _ = st.Pending("ghana", "1", 0, 0)
		return len(items) == 3 && !slices.ContainsFunc(items, func(it store.Item) bool { return it.Attempts == 0 })
	})
	if err := d1.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if wait := it.NextAttempt.Sub(it.FirstAttempt); wait < 48*time.Minute || wait > 72*time.Minute {
			t.Errorf("%s: next attempt in %v, want 1h±20%%", it.Event.ID, wait)
		}
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()

	// Restarted now: nothing is due for an hour.
	d2, _ := startDispatcher(t, st, Options{}, acct)
	d2.Notify("ghana")
	time.Sleep(300 * time.Millisecond)
	if n := len(rcv.hits()); n != 3 {
		t.Fatalf("%d requests after restart, want the 3 from before", n)
	}
	if err := d2.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	after, _ := st.Pending("ghana", "1", 0, 0)
	if !slices.EqualFunc(after, items, func(a, b store.Item) bool { return a.NextAttempt.Equal(b.NextAttempt) }) {
		t.Error("restart changed the stored schedule")
	}

	// Restarted two hours later: everything is due.
	later := &testkit.StepClock{}
	later.Step(2 * time.Hour)
	startDispatcher(t, st, Options{Clock: later}, acct)
	eventually(t, "delivery when due", func() bool { return len(rcv.delivered()) == 3 })
}

// Shutdown waits for in-flight attempts until its ctx ends, then cancels
// them and records nothing, so the event is sent again later.
func TestShutdownCancelsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	d, _ := startDispatcher(t, st, Options{}, account("ghana", webhook(srv.URL)))
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(ctx); err == nil {
		t.Error("Shutdown cut an attempt short and said nothing")
	}
	items, _ := st.Pending("ghana", "1", 0, 0)
	if len(items) != 1 || items[0].Attempts != 0 || !items[0].NextAttempt.IsZero() {
		t.Fatalf("a cancelled attempt was recorded: %+v", items)
	}
}

// A graceful Shutdown lets the in-flight attempt finish and records it.
func TestShutdownWaitsForInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
	}))
	defer srv.Close()
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	d, _ := startDispatcher(t, st, Options{}, account("ghana", webhook(srv.URL)))
	<-started
	if err := d.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(t, st, "ghana"); n != 0 {
		t.Errorf("%d pending after a graceful shutdown", n)
	}
}

// Two webhooks of one account, one with a single slot, each get every
// event, each order's in order.
func TestTwoWebhooks(t *testing.T) {
	rcv := newReceiver(t, nil)
	st := openStore(t, "")
	ids := enqueue(t, st, "ghana", []string{"1", "2"}, 1, 300, 7)
	wh2 := webhook(rcv.srv.URL + "/two")
	wh2.Name = "2"
	wh2.Concurrency = 1
	startDispatcher(t, st, Options{}, account("ghana", webhook(rcv.srv.URL), wh2))
	eventually(t, "all deliveries", func() bool { return len(rcv.delivered()) == 2*len(ids) })
	eventually(t, "an empty outbox", func() bool { return pendingCount(t, st, "ghana") == 0 })
	var one, two []hit
	for _, h := range rcv.delivered() {
		if h.path == "/two" {
			two = append(two, h)
		} else {
			one = append(one, h)
		}
	}
	if len(one) != len(ids) || len(two) != len(ids) {
		t.Errorf("webhook 1 got %d, webhook 2 got %d, want %d each", len(one), len(two), len(ids))
	}
	checkOrder(t, one)
	checkOrder(t, two)
}

// Update: a changed webhook keeps its queue and sends with the new
// settings; a removed one has its pending events dead-lettered with reason
// "webhook removed", alerted, never sent.
func TestUpdate(t *testing.T) {
	var mu sync.Mutex
	block := true
	oldRcv := newReceiver(t, func(string, int) (int, string, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if block {
			return http.StatusServiceUnavailable, "", nil
		}
		return http.StatusOK, "", nil
	})
	newRcv := newReceiver(t, nil)
	st := openStore(t, "")
	ids := enqueue(t, st, "ghana", []string{"1"}, 1, 10, 2)
	slow := func(int) time.Duration { return 200 * time.Millisecond }
	al := &alerts{}
	d, m := startDispatcher(t, st, Options{Backoff: slow, Alerter: al}, account("ghana", webhook(oldRcv.srv.URL)))
	eventually(t, "failed attempts", func() bool { return len(oldRcv.hits()) >= 2 })

	changed := webhook(newRcv.srv.URL)
	changed.Headers = map[string]string{"X-Config": "v2"}
	d.Update([]config.Account{account("ghana", changed)})
	eventually(t, "delivery to the new URL", func() bool { return len(newRcv.delivered()) == len(ids) })
	for _, h := range newRcv.hits() {
		if h.header.Get("X-Config") != "v2" {
			t.Fatal("the new settings were not used")
		}
	}
	checkOrder(t, newRcv.delivered())
	if n := al.count(); n != 0 {
		t.Errorf("%d dead letters for a changed webhook", n)
	}

	// Removed while events are pending: they are dead-lettered, not sent.
	mu.Lock()
	block = false
	mu.Unlock()
	d.Update([]config.Account{account("ghana")})
	time.Sleep(50 * time.Millisecond) // the loop applies the update
	more := enqueue(t, st, "ghana", []string{"1"}, 100, 3, 1)
	d.Notify("ghana")
	eventually(t, "dead letters", func() bool { return al.count() == len(more) })
	if n := len(newRcv.hits()); n != len(ids) {
		t.Errorf("a removed webhook got %d requests", n-len(ids))
	}
	dead, _ := st.Dead("ghana")
	if len(dead) != len(more) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(more))
	}
	for _, it := range dead {
		if it.DeadReason != ReasonRemoved || it.Attempts != 0 || it.Webhook != "1" {
			t.Errorf("dead letter %+v", it)
		}
	}
	if n := pendingCount(t, st, "ghana"); n != 0 {
		t.Errorf("%d pending, want 0", n)
	}
	eventually(t, "the dead-letter gauge", func() bool {
		return testutil.ToFloat64(m.DeadLetters.WithLabelValues("ghana")) == float64(len(more))
	})
}

// An item that leaves the outbox while its attempt fails (an operator
// dropped it) is forgotten, not retried.
func TestItemDroppedWhileFailing(t *testing.T) {
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	items, _ := st.Pending("ghana", "1", 0, 0)
	rcv := newReceiver(t, func(string, int) (int, string, http.Header) {
		done := make(chan error, 1)
		st.Delivered("ghana", "1", items[0].Seq, nil, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Error(err)
		}
		return http.StatusInternalServerError, "", nil
	})
	startDispatcher(t, st, Options{}, account("ghana", webhook(rcv.srv.URL)))
	time.Sleep(200 * time.Millisecond) // the tiny backoff would retry many times meanwhile
	if n := len(rcv.hits()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if _, dead, _ := st.Counts("ghana"); dead != 0 {
		t.Errorf("%d dead letters", dead)
	}
}

// max_age dead-letters once the first attempt is older than it, before
// max_attempts is reached.
func TestMaxAgeDeadLetters(t *testing.T) {
	rcv := newReceiver(t, func(string, int) (int, string, http.Header) { return http.StatusInternalServerError, "", nil })
	st := openStore(t, "")
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	wh := webhook(rcv.srv.URL)
	wh.Retry = config.Retry{MaxAttempts: 1000, MaxAge: 50 * time.Millisecond}
	startDispatcher(t, st, Options{Backoff: func(int) time.Duration { return 20 * time.Millisecond }}, account("ghana", wh))
	eventually(t, "a dead letter", func() bool { _, dead, _ := st.Counts("ghana"); return dead == 1 })
	dead, _ := st.Dead("ghana")
	it := dead[0]
	if it.DeadReason != ReasonMaxAge || it.Attempts < 2 || it.Attempts > 10 {
		t.Errorf("reason %q after %d attempts", it.DeadReason, it.Attempts)
	}
	if age := it.DeadAt.Sub(it.FirstAttempt); age < 50*time.Millisecond {
		t.Errorf("dead after %v, max_age is 50ms", age)
	}
}
