package poll

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// clock is a settable clock shared by the simulator (late commits,
// createdAt) and the poller (look-back marks).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testAccount is the config of the simulated account "acme" as the config
// loader would default it, with the look-back in the fake clock's time.
func testAccount(url string) config.Account {
	return config.Account{
		Name:         "acme",
		URL:          url,
		APIKey:       "key-acme",
		Statuses:     []string{"approved"},
		StartFrom:    "beginning",
		TimeZone:     time.UTC,
		OnCreate:     true,
		RateLimit:    -1, // the simulator runs unlimited; tests count requests instead
		LookBack:     10000,
		LookBackTime: 2 * time.Minute,
		PageBudget:   50,
		Timeout:      10 * time.Second,
		Reconcile:    config.Reconcile{Every: 10 * time.Minute, Window: 24 * time.Hour},
		Webhooks:     []config.Webhook{{Name: "1"}},
	}
}

// testClientOptions are the account's client options, counted in m, with
// retries fast enough for tests.
func testClientOptions(acct config.Account, m *metrics.Metrics, retries int) retailcrm.Options {
	o := retailcrm.AccountOptions(acct)
	o.Logger, o.UserAgent, o.Observe = discard(), "poll-test", m.APIObserver(acct.Name)
	o.MaxRetries = retries
	o.RetryWait = time.Millisecond
	o.RetryMaxWait = 5 * time.Millisecond
	return o
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// harness is a simulator account, a store and a poller over them.
type harness struct {
	t        testing.TB
	clock    *clock
	sim      *crmsim.Sim
	srv      *httptest.Server
	crm      *crmsim.Account
	cfg      config.Account
	st       *store.Store
	path     string // of the state file
	m        *metrics.Metrics
	p        *Poller
	fail     *failAfter
	notified atomic.Int64
}

type harnessOptions struct {
	sim        crmsim.AccountOptions // Name and APIKey are filled in
	account    func(*config.Account)
	retries    int // client retries; 0: 2
	seed       int64
	failOrders bool // h.fail fails orders requests after the first
}

// failAfter, once on, fails every orders request after the first with a
// 500; with historyLeft >= 0 it lets that many history requests through and
// fails the others.
type failAfter struct {
	next        http.Handler
	on          atomic.Bool
	calls       atomic.Int64
	historyLeft atomic.Int64
}

func (f *failAfter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	orders := f.on.Load() && strings.HasSuffix(r.URL.Path, "/api/v5/orders") && f.calls.Add(1) > 1
	history := strings.HasSuffix(r.URL.Path, "/api/v5/orders/history") && f.historyLeft.Load() >= 0 && f.historyLeft.Add(-1) < 0
	if orders || history {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"success":false,"errorMsg":"Internal Server Error"}`))
		return
	}
	f.next.ServeHTTP(w, r)
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), m: metrics.New()}
	h.sim = crmsim.New(crmsim.Options{Seed: o.seed, Now: h.clock.Now})
	so := o.sim
	so.Name, so.APIKey = "acme", "key-acme"
	if so.RateLimit == 0 {
		so.RateLimit = -1
	}
	h.crm = h.sim.AddAccount(so)
	h.fail = &failAfter{next: h.sim}
	h.fail.historyLeft.Store(-1)
	h.fail.on.Store(o.failOrders)
	h.srv = httptest.NewServer(h.fail)
	t.Cleanup(h.srv.Close)
	h.cfg = testAccount(h.crm.BaseURL(h.srv.URL))
	if o.account != nil {
		o.account(&h.cfg)
	}
	h.path = filepath.Join(t.TempDir(), store.FileName)
	st, err := store.Open(h.path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h.st = st
	retries := o.retries
	if retries == 0 {
		retries = 2
	}
	client, err := retailcrm.New(testClientOptions(h.cfg, h.m, retries))
	if err != nil {
		t.Fatal(err)
	}
	h.p = New(h.cfg, client, st, h.m, discard(), func(account string) {
		if account != "acme" {
			t.Errorf("notify(%q), want acme", account)
		}
		h.notified.Add(1)
	})
	h.p.now = h.clock.Now
	return h
}

func (h *harness) poll() {
	h.t.Helper()
	if err := h.p.Poll(context.Background()); err != nil {
		h.t.Fatalf("Poll: %v", err)
	}
}

// drain polls until a poll moves the cursor no further.
func (h *harness) drain() {
	h.t.Helper()
	for range 1000 {
		before := h.state().Cursor
		h.poll()
		if h.state().Cursor == before {
			return
		}
	}
	h.t.Fatal("history never drained")
}

// failHistoryAfter lets n more history requests through and fails the
// rest with a 500; n < 0 lets every request through again.
func (h *harness) failHistoryAfter(n int64) { h.fail.historyLeft.Store(n) }

// historyIDs reads every visible history id through the API, outside the
// poller (the simulator counts these requests too).
func (h *harness) historyIDs() []int64 {
	h.t.Helper()
	c, err := retailcrm.New(testClientOptions(h.cfg, metrics.New(), 2))
	if err != nil {
		h.t.Fatal(err)
	}
	var ids []int64
	f := retailcrm.HistoryFilter{Limit: 100}
	for {
		page, err := c.History(context.Background(), f)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, e := range page.History {
			ids = append(ids, e.ID)
		}
		if len(page.History) < 100 {
			return ids
		}
		f.SinceID = ids[len(ids)-1]
	}
}

// fileInfo stats the state file.
func (h *harness) fileInfo() os.FileInfo {
	h.t.Helper()
	fi, err := os.Stat(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	return fi
}

func (h *harness) state() store.AccountState {
	h.t.Helper()
	st, err := h.st.State("acme")
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// outbox returns the items queued for webhook "1".
func (h *harness) outbox() []store.Item {
	h.t.Helper()
	items, err := h.st.Pending("acme", "1", 0, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return items
}

// requests returns the simulator's history and orders request counts.
func (h *harness) requests() (history, orders int) {
	return h.crm.Requests(crmsim.EndpointHistory), h.crm.Requests(crmsim.EndpointOrders)
}

// want is the expected event of a ground-truth transition under rules.
type want struct {
	typ      event.Type
	old, new string
	orderID  int64
}

// expected filters the ground truth the way the account's rules should.
func expected(cfg config.Account, ts []crmsim.Transition) map[int64]want {
	out := make(map[int64]want)
	for _, tr := range ts {
		switch {
		case !slices.Contains(cfg.Statuses, tr.New):
		case len(cfg.Sites) > 0 && !slices.Contains(cfg.Sites, tr.Site):
		case cfg.SkipOwnChanges && tr.APIKeyCurrent:
		case tr.Created && !cfg.OnCreate:
		case tr.Created:
			out[tr.HistoryID] = want{event.Created, "", tr.New, tr.OrderID}
		default:
			out[tr.HistoryID] = want{event.StatusChanged, tr.Old, tr.New, tr.OrderID}
		}
	}
	return out
}

// checkOutbox compares outbox items with the expected events: one item per
// expected history id, nothing else, fields as in the ground truth.
func checkOutbox(t testing.TB, account string, items []store.Item, exp map[int64]want) {
	t.Helper()
	got := make(map[int64]bool, len(items))
	for _, it := range items {
		ev := it.Event
		id := ev.Change.HistoryID
		if got[id] {
			t.Errorf("duplicate event for history id %d", id)
			continue
		}
		got[id] = true
		w, ok := exp[id]
		if !ok {
			t.Errorf("unexpected event %s (%s %s->%s)", ev.ID, ev.Type, ev.Change.OldValue, ev.Change.NewValue)
			continue
		}
		if ev.ID != event.ID(account, id) || ev.Account != account || ev.Type != w.typ ||
			ev.Change.OldValue != w.old || ev.Change.NewValue != w.new || ev.Change.Field != "status" || it.OrderID != w.orderID {
			t.Errorf("event %s = %s %q->%q order %d, want %s %q->%q order %d",
				ev.ID, ev.Type, ev.Change.OldValue, ev.Change.NewValue, it.OrderID, w.typ, w.old, w.new, w.orderID)
		}
		if len(ev.Order) == 0 {
			t.Errorf("event %s has no order", ev.ID)
		}
	}
	missing := 0
	for id := range exp {
		if !got[id] {
			missing++
			if missing <= 10 {
				t.Errorf("missing event for history id %d", id)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d expected events missing", missing, len(exp))
	}
}
