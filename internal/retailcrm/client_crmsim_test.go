package retailcrm_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

const simKey = "sim-KEY-not-in-any-log-7781"

// codes counts the HTTP codes the client reports through Options.Observe.
type codes struct {
	mu sync.Mutex
	n  map[int]int
}

func (c *codes) observe(_ string, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[int]int)
	}
	c.n[code]++
}

func (c *codes) get(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[code]
}

func newSim(t *testing.T) (*crmsim.Sim, *httptest.Server) {
	sim, srv, _ := newTimedSim(t)
	return sim, srv
}

// arrivals records when each request reached the server, per account.
type arrivals struct {
	mu sync.Mutex
	at map[string][]time.Time
}

// minSpan returns the shortest time in which n+1 requests of an account
// arrived: at most n per second means it is at least a second.
func (a *arrivals) minSpan(account string, n int) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := slices.SortedFunc(slices.Values(a.at[account]), time.Time.Compare)
	span := time.Duration(math.MaxInt64)
	for i := 0; i+n < len(at); i++ {
		span = min(span, at[i+n].Sub(at[i]))
	}
	return span
}

// sendTimes is a transport that notes when each request left the client.
type sendTimes struct {
	next http.RoundTripper
	mu   sync.Mutex
	at   []time.Time
}

func (s *sendTimes) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	return s.next.RoundTrip(r)
}

// minSpan returns the shortest time in which n+1 requests were sent.
func (s *sendTimes) minSpan(n int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	span := time.Duration(math.MaxInt64)
	for i := 0; i+n < len(s.at); i++ {
		span = min(span, s.at[i+n].Sub(s.at[i]))
	}
	return span
}

// newTimedSim serves crmsim behind a handler that notes arrival times, so
// that a 503 can be told apart: the client sent too fast, or the simulator
// read its clock late (it does so under the account lock, after other work).
func newTimedSim(t *testing.T) (*crmsim.Sim, *httptest.Server, *arrivals) {
	t.Helper()
	sim := crmsim.New(crmsim.Options{Seed: 7})
	arr := &arrivals{at: make(map[string][]time.Time)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		account, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		arr.mu.Lock()
		arr.at[account] = append(arr.at[account], now)
		arr.mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return sim, srv, arr
}

func simClient(t *testing.T, base, key string, edit func(*retailcrm.Options)) *retailcrm.Client {
	t.Helper()
	opts := retailcrm.Options{
		BaseURL:      base,
		APIKey:       key,
		RetryWait:    time.Millisecond,
		RetryMaxWait: 20 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := retailcrm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCrmsimStaysUnderRateLimit drives requests from several goroutines
// through one client against crmsim, which allows 10 requests per second
// per key and answers 503 above it. The client must never SEND more than
// the limit in any second: that is checked on the send times (what the
// client controls), and every call must succeed. When the requests arrive
// is up to the machine: a busy scheduler can bunch well-paced requests up
// in transit, and then crmsim answers 503 and the client retries; so
// crmsim's refusals are only reported.
// 200 requests per rate (about 25s, both rates in parallel); 50 with -short.
func TestCrmsimStaysUnderRateLimit(t *testing.T) {
	total := 200
	if testing.Short() {
		total = 50
	}
	sim, srv, arr := newTimedSim(t)
	for _, rps := range []float64{10, 8} {
		name := map[float64]string{10: "rate10", 8: "rate8"}[rps]
		acct := sim.AddAccount(crmsim.AccountOptions{Name: name, APIKey: simKey + name, Sites: []string{"a", "b"}})
		var ids []int64
		for i := range 30 {
			id := acct.CreateOrder([]string{"a", "b"}[i%2], "new")
			acct.SetStatus(id, "approved")
			ids = append(ids, id)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var seen codes
			pool, err := retailcrm.NewTransport(retailcrm.TransportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sent := &sendTimes{next: pool}
			c := simClient(t, acct.BaseURL(srv.URL), simKey+name, func(o *retailcrm.Options) {
				o.RateLimit = rps
				o.Observe = seen.observe
				o.Transport = sent
			})
			ctx := context.Background()
			calls := []func() error{
				func() error { _, err := c.History(ctx, retailcrm.HistoryFilter{Limit: 20}); return err },
				func() error { _, err := c.Orders(ctx, ids[:10]); return err },
				func() error { _, err := c.Statuses(ctx); return err },
				func() error { _, err := c.Credentials(ctx); return err },
			}
			const workers = 5
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, total)
			for w := range workers {
				wg.Go(func() {
					for i := w; i < total; i += workers {
						if err := calls[i%len(calls)](); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			elapsed := time.Since(start)
			if span := sent.minSpan(int(rps)); span < time.Second {
				t.Errorf("the client sent %d requests within %v, at rate_limit %v", int(rps)+1, span, rps)
			}
			if n := seen.get(200); n != total {
				t.Errorf("the client observed %d answers 200, want one per call (%d)", n, total)
			}
			if n := acct.Requests(""); n < total {
				t.Errorf("crmsim saw %d requests, want at least %d", n, total)
			}
			t.Logf("%d requests in %v: %.2f/s at rate_limit %v; crmsim refused %d (the fastest 11 arrived in %v)",
				total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), rps,
				acct.RateLimited(), arr.minSpan(name, 10))
		})
	}
}

// TestCrmsimData reads what crmsim wrote: history entries match its ground
// truth, and orders come back with their raw JSON intact.
func TestCrmsimData(t *testing.T) {
	sim, srv := newSim(t)
	acct := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: simKey, Sites: []string{"shop"}})
	a := acct.CreateOrder("shop", "new")
	b := acct.CreateOrder("shop", "approved")
	acct.SetStatus(a, "approved")
	acct.SetField(b, "manager_comment", nil, "call back")
	acct.SetStatus(b, "cancel")
	c := simClient(t, acct.BaseURL(srv.URL), simKey, nil)
	ctx := context.Background()

	page, err := c.History(ctx, retailcrm.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []crmsim.Transition
	for _, e := range page.History {
		if e.Field != "status" {
			if e.Field != "manager_comment" || e.NewValue.Code() != "call back" {
				t.Errorf("entry %+v", e)
			}
			continue
		}
		if e.Order == nil {
			t.Fatalf("entry %d without order", e.ID)
		}
		got = append(got, crmsim.Transition{HistoryID: e.ID, OrderID: e.Order.ID, Site: e.Order.Site,
			Old: e.OldValue.Code(), New: e.NewValue.Code(), Created: e.Created, Source: e.Source})
	}
	var want []crmsim.Transition
	for _, tr := range acct.Transitions() {
		want = append(want, crmsim.Transition{HistoryID: tr.HistoryID, OrderID: tr.OrderID, Site: tr.Site,
			Old: tr.Old, New: tr.New, Created: tr.Created, Source: tr.Source})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history\n got %+v\nwant %+v", got, want)
	}
	if len(want) != 4 {
		t.Errorf("%d transitions, want 4", len(want))
	}

	orders, err := c.Orders(ctx, []int64{a, b, 999999})
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != 2 {
		t.Fatalf("%d orders, want 2", len(orders))
	}
	for _, o := range orders {
		raw, ok := acct.OrderJSON(o.ID)
		if !ok || !sameJSON(t, o.Raw, raw) {
			t.Errorf("order %d raw %s\nwant %s", o.ID, o.Raw, raw)
		}
		if o.Site != "shop" || (o.ID == a && o.Status != "approved") || (o.ID == b && o.Status != "cancel") {
			t.Errorf("order %+v", o)
		}
	}

	st, err := c.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range crmsim.DefaultStatuses {
		if st[code].Code != code {
			t.Errorf("status %q missing from %v", code, st)
		}
	}
	cr, err := c.Credentials(ctx)
	if err != nil || len(cr.SitesAvailable) != 1 || cr.SitesAvailable[0] != "shop" {
		t.Errorf("credentials %+v, %v", cr, err)
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// TestCrmsimErrors: a wrong key, an unknown account and injected faults
// each give their typed error, or a success once retries get through.
func TestCrmsimErrors(t *testing.T) {
	sim, srv := newSim(t)
	acct := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: simKey})
	acct.CreateOrder("main", "approved")
	tests := []struct {
		name     string
		base     string
		key      string
		faults   crmsim.Faults
		sentinel error
		apiCode  int
		msg      string // substring of the error
		requests int    // at the account
	}{
		{name: "wrong key", base: acct.BaseURL(srv.URL), key: "wrong-key", sentinel: retailcrm.ErrUnauthorized,
			msg: `/api/v5/orders/history: HTTP 403 Wrong "apiKey" value.`, requests: 1},
		{name: "unknown account", base: crmsim.URL(srv.URL, "nobody"), key: simKey, sentinel: retailcrm.ErrAccountNotFound,
			msg: "HTTP 404 with an HTML page", requests: 0},
		{name: "faults then success", base: acct.BaseURL(srv.URL), key: simKey,
			faults: crmsim.Faults{Fail503: 1, Fail429: 1, HTML: 1, Truncated: 1, Malformed: 1}, requests: 6},
		{name: "503 storm", base: acct.BaseURL(srv.URL), key: simKey, faults: crmsim.Faults{Fail503: 100},
			sentinel: retailcrm.ErrRateLimited, msg: "HTTP 503", requests: 6},
		{name: "500s", base: acct.BaseURL(srv.URL), key: simKey, faults: crmsim.Faults{Fail500: 100},
			apiCode: 500, msg: "500 Internal Server Error", requests: 6},
		{name: "always truncated", base: acct.BaseURL(srv.URL), key: simKey, faults: crmsim.Faults{Truncated: 100},
			sentinel: retailcrm.ErrBadResponse, msg: "HTTP 200: unexpected end of JSON input", requests: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct.SetFaults(tt.faults)
			before := acct.Requests(crmsim.EndpointHistory)
			c := simClient(t, tt.base, tt.key, func(o *retailcrm.Options) { o.RateLimit = -1 })
			_, err := c.History(context.Background(), retailcrm.HistoryFilter{})
			if n := acct.Requests(crmsim.EndpointHistory) - before; n != tt.requests {
				t.Errorf("%d requests at the account, want %d", n, tt.requests)
			}
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), tt.key) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.msg)
			}
			var ae *retailcrm.APIError
			switch {
			case tt.sentinel != nil && !errors.Is(err, tt.sentinel):
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			case tt.sentinel == nil && (!errors.As(err, &ae) || ae.StatusCode != tt.apiCode):
				t.Errorf("err = %v, want *APIError %d", err, tt.apiCode)
			}
		})
	}
}

// BenchmarkCrmsimHistory: one full history page (100 entries, creations
// and status changes) per op through the client, rate limits off on both
// sides: the client's own cost per poll request, HTTP included.
func BenchmarkCrmsimHistory(b *testing.B) {
	sim := crmsim.New(crmsim.Options{Seed: 7})
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	acct := sim.AddAccount(crmsim.AccountOptions{Name: "bench", APIKey: simKey, RateLimit: -1})
	for range 50 {
		acct.SetStatus(acct.CreateOrder("main", "new"), "approved")
	}
	c, err := retailcrm.New(retailcrm.Options{BaseURL: acct.BaseURL(srv.URL), APIKey: simKey, RateLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		p, err := c.History(ctx, retailcrm.HistoryFilter{})
		if err != nil || len(p.History) != 100 {
			b.Fatal(len(p.History), err)
		}
	}
}

// TestCrmsimOrdersSweepCalls: the calls an orders sweep makes, against
// crmsim: OrderList with statuses, a statusUpdatedAt bound in the account's
// time zone, sites and paging; History of one order; the sites reference.
func TestCrmsimOrdersSweepCalls(t *testing.T) {
	sim, srv := newSim(t)
	tz := time.FixedZone("UTC+3", 3*3600)
	acct := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: simKey, Sites: []string{"s1", "s2"}, TimeZone: tz, RateLimit: -1})
	var approved []int64
	onS2 := 0
	for i := range 200 {
		id := acct.CreateOrder([]string{"s1", "s2"}[i%2], "new")
		if i%3 != 2 {
			acct.SetStatus(id, "approved")
			approved = append(approved, id)
			onS2 += i % 2
		}
	}
	c := simClient(t, acct.BaseURL(srv.URL), simKey, func(o *retailcrm.Options) { o.RateLimit = -1 })
	ctx := context.Background()
	var got []int64
	for page := 1; ; page++ {
		p, err := c.OrderList(ctx, retailcrm.OrdersFilter{ExtendedStatus: []string{"approved", "complete"},
			StatusUpdatedAtFrom: time.Now().Add(-time.Hour), Location: tz, Page: page})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Orders {
			if o.Status != "approved" || o.StatusUpdatedAt == "" {
				t.Errorf("order %+v", o)
			}
			got = append(got, o.ID)
		}
		if p.Pagination.TotalCount != len(approved) || p.Pagination.CurrentPage != page {
			t.Errorf("pagination %+v", p.Pagination)
		}
		if page >= p.Pagination.TotalPageCount {
			break
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, approved) {
		t.Errorf("%d orders listed, want the %d approved", len(got), len(approved))
	}
	if n, want := acct.Requests(crmsim.EndpointOrders), (len(approved)+99)/100; n != want || want < 2 {
		t.Errorf("%d orders requests for %d orders, want %d", n, len(approved), want)
	}
	// Nothing changed since an hour from now; a site filter keeps its orders.
	if p, err := c.OrderList(ctx, retailcrm.OrdersFilter{ExtendedStatus: []string{"approved"},
		StatusUpdatedAtFrom: time.Now().Add(time.Hour), Location: tz}); err != nil || len(p.Orders) != 0 {
		t.Errorf("future bound: %d orders, %v", len(p.Orders), err)
	}
	if p, err := c.OrderList(ctx, retailcrm.OrdersFilter{ExtendedStatus: []string{"approved"}, Sites: []string{"s2"}}); err != nil ||
		p.Pagination.TotalCount != onS2 || len(p.Orders) != onS2 {
		t.Errorf("site s2: %+v, %v", p.Pagination, err)
	}

	order := approved[7]
	h, err := c.History(ctx, retailcrm.HistoryFilter{OrderID: order, StartDate: time.Now().Add(-time.Hour), Location: tz})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.History) != 2 || !h.History[0].Created || h.History[1].NewValue.Code() != "approved" {
		t.Errorf("history of order %d: %+v", order, h.History)
	}
	for _, e := range h.History {
		if e.Order == nil || e.Order.ID != order {
			t.Errorf("entry %d of another order: %+v", e.ID, e.Order)
		}
	}

	sites, err := c.Sites(ctx)
	if err != nil || len(sites) != 2 || sites["s1"].Code != "s1" || sites["s2"].Name == "" {
		t.Errorf("sites %+v, %v", sites, err)
	}
}
