package crmsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is an injectable clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testKey = "key-ghana"

// setup starts a simulator with one account "ghana" (two sites, unlimited
// rate unless rate is set) behind an httptest server.
func setup(t *testing.T, rate int) (*Sim, *Account, *httptest.Server, *clock) {
	t.Helper()
	clk := newClock()
	sim := New(Options{Seed: 1, Now: clk.Now})
	acct := sim.AddAccount(AccountOptions{
		Name: "ghana", APIKey: testKey, ExtraKeys: []string{"key-other"},
		Sites: []string{"shop-a", "shop-b"}, RateLimit: rate,
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, acct, srv, clk
}

type response struct {
	code  int
	ctype string
	body  []byte
}

func get(t *testing.T, srv *httptest.Server, path, key string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-KEY", key)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header.Get("Content-Type"), b}
}

func decode(t *testing.T, r response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %q", err, r.body)
	}
	return m
}

func hasKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: key %q missing in %v", what, k, m)
		}
	}
}

func historyIDs(t *testing.T, m map[string]any) []int64 {
	t.Helper()
	var ids []int64
	for _, e := range m["history"].([]any) {
		ids = append(ids, int64(e.(map[string]any)["id"].(float64)))
	}
	return ids
}

func TestCredentials(t *testing.T) {
	_, _, srv, _ := setup(t, -1)
	r := get(t, srv, "/ghana/api/credentials", testKey)
	if r.code != 200 || !strings.HasPrefix(r.ctype, "application/json") {
		t.Fatalf("got %d %s", r.code, r.ctype)
	}
	m := decode(t, r)
	hasKeys(t, "credentials", m, "success", "scopes", "siteAccess", "sitesAvailable")
	if m["siteAccess"] != "access_full" || fmt.Sprint(m["sitesAvailable"]) != "[shop-a shop-b]" {
		t.Errorf("credentials = %v", m)
	}
	// The apiKey query parameter works too, as in the real API.
	if r := get(t, srv, "/ghana/api/credentials?apiKey=key-other", ""); r.code != 200 {
		t.Errorf("apiKey query parameter: %d", r.code)
	}
}

func TestAuthAndRouting(t *testing.T) {
	_, _, srv, _ := setup(t, -1)
	tests := []struct {
		name, path, key string
		code            int
		html            bool
		errorMsg        string
	}{
		{"wrong key", "/ghana/api/v5/orders/history", "nope", 403, false, `Wrong "apiKey" value.`},
		{"no key", "/ghana/api/v5/reference/statuses", "", 403, false, `Wrong "apiKey" value.`},
		{"unknown account", "/togo/api/v5/orders/history", testKey, 404, true, ""},
		{"root", "/", testKey, 404, true, ""},
		{"unknown method", "/ghana/api/v5/customers", testKey, 404, false, "API method not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, srv, tt.path, tt.key)
			if r.code != tt.code {
				t.Fatalf("code %d, want %d", r.code, tt.code)
			}
			if tt.html {
				if !strings.HasPrefix(r.ctype, "text/html") || !strings.Contains(string(r.body), "<html") {
					t.Fatalf("want an HTML page, got %s %q", r.ctype, r.body)
				}
				return
			}
			m := decode(t, r)
			if m["success"] != false || m["errorMsg"] != tt.errorMsg {
				t.Errorf("body %s", r.body)
			}
		})
	}
}

func TestStatuses(t *testing.T) {
	_, _, srv, _ := setup(t, -1)
	m := decode(t, get(t, srv, "/ghana/api/v5/reference/statuses", testKey))
	sts := m["statuses"].(map[string]any)
	var codes []string
	for code, v := range sts {
		codes = append(codes, code)
		st := v.(map[string]any)
		hasKeys(t, code, st, "name", "code", "active", "ordering", "group")
		if st["code"] != code {
			t.Errorf("%s: code %v", code, st["code"])
		}
	}
	slices.Sort(codes)
	if fmt.Sprint(codes) != "[approved assembling cancel complete new]" {
		t.Errorf("codes %v", codes)
	}
}

func TestHistoryShapes(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	id := acct.CreateOrder("shop-a", "new")
	h1 := acct.SetStatus(id, "approved")
	h2 := acct.SetStatusVia(id, "assembling", testKey)
	h3 := acct.SetStatusVia(id, "complete", "key-other")
	h4 := acct.SetField(id, "manager_comment", nil, "call back")
	if acct.SetStatus(id, "complete") != 0 {
		t.Error("setting the same status made an entry")
	}
	m := decode(t, get(t, srv, "/ghana/api/v5/orders/history?limit=100", testKey))
	hasKeys(t, "history page", m, "success", "generatedAt", "history", "pagination")
	pg := m["pagination"].(map[string]any)
	if pg["totalCount"] != 5.0 || pg["totalPageCount"] != 1.0 || pg["limit"] != 100.0 || pg["currentPage"] != 1.0 {
		t.Errorf("pagination %v", pg)
	}
	hist := m["history"].([]any)
	if len(hist) != 5 {
		t.Fatalf("%d entries", len(hist))
	}
	ids := historyIDs(t, m)
	if !slices.IsSorted(ids) || ids[1] != h1 || ids[2] != h2 || ids[3] != h3 || ids[4] != h4 {
		t.Errorf("ids %v, want sorted ending %d %d %d %d", ids, h1, h2, h3, h4)
	}

	creation := hist[0].(map[string]any)
	hasKeys(t, "creation", creation, "id", "createdAt", "created", "source", "field", "oldValue", "newValue", "order", "user")
	if creation["created"] != true || creation["field"] != "status" || creation["oldValue"] != nil ||
		creation["newValue"].(map[string]any)["code"] != "new" {
		t.Errorf("creation entry %v", creation)
	}
	full := creation["order"].(map[string]any)
	hasKeys(t, "creation order", full, "id", "number", "site", "status", "createdAt", "firstName", "customer", "items", "payments", "customFields", "totalSumm")
	if full["number"] != fmt.Sprintf("%dA", id) || full["status"] != "new" {
		t.Errorf("creation order %v", full)
	}
	if _, err := time.Parse(timeLayout, creation["createdAt"].(string)); err != nil {
		t.Errorf("createdAt: %v", err)
	}

	change := hist[1].(map[string]any)
	if _, ok := change["created"]; ok {
		t.Errorf("created on a change entry: %v", change)
	}
	if change["source"] != "user" || change["user"] == nil ||
		change["oldValue"].(map[string]any)["code"] != "new" || change["newValue"].(map[string]any)["code"] != "approved" {
		t.Errorf("status entry %v", change)
	}
	minimal := change["order"].(map[string]any)
	var keys []string
	for k := range minimal {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if k := strings.Join(keys, ","); k != "externalId,id,managerId,site,status" && k != "id,managerId,site,status" {
		t.Errorf("minimal order keys %s", k)
	}
	if minimal["status"] != "approved" {
		t.Errorf("minimal order status %v, want the status after the change", minimal["status"])
	}

	for i, want := range []bool{true, false} {
		e := hist[2+i].(map[string]any)
		if e["source"] != "api" || e["apiKey"].(map[string]any)["current"] != want {
			t.Errorf("api entry %d: %v, want current=%v", i, e, want)
		}
	}
	// The other key sees its own change as current.
	m = decode(t, get(t, srv, "/ghana/api/v5/orders/history?limit=100", "key-other"))
	if e := m["history"].([]any)[3].(map[string]any); e["apiKey"].(map[string]any)["current"] != true {
		t.Errorf("other key: %v", e)
	}
	comment := hist[4].(map[string]any)
	if comment["field"] != "manager_comment" || comment["oldValue"] != nil || comment["newValue"] != "call back" {
		t.Errorf("comment entry %v", comment)
	}

	tr := acct.Transitions()
	if len(tr) != 4 || !tr[0].Created || tr[1].Old != "new" || tr[1].New != "approved" ||
		!tr[2].APIKeyCurrent || tr[3].APIKeyCurrent || tr[3].APIKey != "key-other" || tr[3].HistoryID != h3 {
		t.Errorf("transitions %+v", tr)
	}
}

func TestHistorySinceIDPaging(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	acct.RandomWalk(rand.New(rand.NewPCG(1, 2)), 10, 300)
	want := acct.HistoryLen()
	var got []int64
	since := int64(0)
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		m := decode(t, get(t, srv, fmt.Sprintf("/ghana/api/v5/orders/history?filter[sinceId]=%d&limit=50", since), testKey))
		ids := historyIDs(t, m)
		pg := m["pagination"].(map[string]any)
		if int(pg["totalCount"].(float64)) != want-len(got) {
			t.Fatalf("totalCount %v after %d entries, want %d", pg["totalCount"], len(got), want-len(got))
		}
		if len(ids) == 0 {
			break
		}
		if ids[0] <= since {
			t.Fatalf("id %d not above sinceId %d", ids[0], since)
		}
		got = append(got, ids...)
		since = ids[len(ids)-1]
	}
	if len(got) != want || !slices.IsSorted(got) {
		t.Fatalf("got %d ids (sorted %v), want %d", len(got), slices.IsSorted(got), want)
	}
	gaps := 0
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("duplicate id %d", got[i])
		}
		if got[i] > got[i-1]+1 {
			gaps++
		}
	}
	if gaps == 0 {
		t.Error("ids have no gaps")
	}
	if got[len(got)-1] != acct.LastHistoryID() {
		t.Errorf("last id %d, LastHistoryID %d", got[len(got)-1], acct.LastHistoryID())
	}
	// page works as well, up to the depth limit.
	m := decode(t, get(t, srv, "/ghana/api/v5/orders/history?limit=20&page=2", testKey))
	if ids := historyIDs(t, m); len(ids) != 20 || ids[0] != got[20] {
		t.Errorf("page 2 starts at %v, want %d", ids[:1], got[20])
	}
}

func TestHistoryDateFilter(t *testing.T) {
	_, acct, srv, clk := setup(t, -1)
	id := acct.CreateOrder("shop-a", "new")
	clk.Advance(time.Hour)
	h1 := acct.SetStatus(id, "approved")
	clk.Advance(time.Hour)
	acct.SetStatus(id, "complete")
	q := url.Values{"filter[startDate]": {"2026-11-23 10:00:00"}, "filter[endDate]": {"2026-11-23 10:30:00"}}
	m := decode(t, get(t, srv, "/ghana/api/v5/orders/history?"+q.Encode(), testKey))
	if ids := historyIDs(t, m); len(ids) != 1 || ids[0] != h1 {
		t.Errorf("ids %v, want [%d]", ids, h1)
	}

	// The filter is read in the account time zone.
	clk2 := newClock()
	tz := time.FixedZone("UTC+3", 3*3600)
	sim := New(Options{Seed: 1, Now: clk2.Now})
	a := sim.AddAccount(AccountOptions{Name: "msk", APIKey: "k", TimeZone: tz, RateLimit: -1})
	a.CreateOrder("main", "new") // 09:00 UTC = 12:00 local
	srv2 := httptest.NewServer(sim)
	defer srv2.Close()
	for _, tt := range []struct {
		start string
		n     int
	}{{"2026-11-23 12:00:00", 1}, {"2026-11-23 12:00:01", 0}} {
		m := decode(t, get(t, srv2, "/msk/api/v5/orders/history?"+url.Values{"filter[startDate]": {tt.start}}.Encode(), "k"))
		if ids := historyIDs(t, m); len(ids) != tt.n {
			t.Errorf("startDate %s: %d entries, want %d", tt.start, len(ids), tt.n)
		}
		if e := m["history"].([]any); tt.n == 1 && e[0].(map[string]any)["createdAt"] != "2026-11-23 12:00:00" {
			t.Errorf("createdAt %v, want local time", e[0].(map[string]any)["createdAt"])
		}
	}
}

func TestFilterValidation(t *testing.T) {
	_, _, srv, _ := setup(t, -1)
	tests := []struct {
		query, errKey string
	}{
		{"limit=10", "limit"},
		{"limit=abc", "limit"},
		{"limit=200", "limit"},
		{"page=0", "page"},
		{"limit=100&page=101", "page"},
		{"filter[sinceId]=x", "sinceId"},
		{"filter[startDate]=yesterday", "startDate"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := get(t, srv, "/ghana/api/v5/orders/history?"+tt.query, testKey)
			if r.code != 400 {
				t.Fatalf("code %d", r.code)
			}
			m := decode(t, r)
			if m["success"] != false || m["errorMsg"] != "Errors in the filter" {
				t.Errorf("body %s", r.body)
			}
			if _, ok := m["errors"].(map[string]any)[tt.errKey]; !ok {
				t.Errorf("errors lack %q: %s", tt.errKey, r.body)
			}
		})
	}
	for _, limit := range []string{"20", "50", "100"} {
		if r := get(t, srv, "/ghana/api/v5/orders?limit="+limit, testKey); r.code != 200 {
			t.Errorf("orders limit=%s: %d", limit, r.code)
		}
	}
	if r := get(t, srv, "/ghana/api/v5/orders?limit=25", testKey); r.code != 400 {
		t.Errorf("orders limit=25: %d", r.code)
	}
}

func TestOrders(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	var ids []int64
	for i := range 30 {
		ids = append(ids, acct.CreateOrder([]string{"shop-a", "shop-b"}[i%2], "new"))
	}
	acct.SetCustomField(ids[0], "delivery_slot", "morning")
	acct.DeleteOrder(ids[1])
	q := url.Values{"limit": {"100"}, "filter[ids][]": {fmt.Sprint(ids[0]), fmt.Sprint(ids[1]), fmt.Sprint(ids[2]), "999999"}}
	m := decode(t, get(t, srv, "/ghana/api/v5/orders?"+q.Encode(), testKey))
	hasKeys(t, "orders page", m, "success", "pagination", "orders")
	orders := m["orders"].([]any)
	got := map[int64]map[string]any{}
	for _, o := range orders {
		om := o.(map[string]any)
		got[int64(om["id"].(float64))] = om
	}
	if len(got) != 2 || got[ids[0]] == nil || got[ids[2]] == nil {
		t.Fatalf("orders %v, want %d and %d (deleted %d absent)", slices.Collect(maps.Keys(got)), ids[0], ids[2], ids[1])
	}
	o := got[ids[0]]
	hasKeys(t, "order", o, "id", "number", "site", "status", "createdAt", "statusUpdatedAt", "firstName", "lastName",
		"phone", "email", "customer", "items", "totalSumm", "payments", "customFields")
	if _, ok := o["payments"].(map[string]any); !ok {
		t.Errorf("payments not an object: %v", o["payments"])
	}
	if cf, ok := o["customFields"].(map[string]any); !ok || cf["delivery_slot"] != "morning" {
		t.Errorf("customFields %v", o["customFields"])
	}
	hasKeys(t, "customer", o["customer"].(map[string]any), "id", "firstName", "lastName", "email", "phones")
	item := o["items"].([]any)[0].(map[string]any)
	hasKeys(t, "item", item, "id", "offer", "quantity", "initialPrice")

	// Without custom fields the value is [] (how PHP encodes an empty map).
	emptyCF := 0
	m = decode(t, get(t, srv, "/ghana/api/v5/orders?limit=100", testKey))
	for _, o := range m["orders"].([]any) {
		if cf, ok := o.(map[string]any)["customFields"].([]any); ok && len(cf) == 0 {
			emptyCF++
		}
	}
	if emptyCF == 0 {
		t.Error("no order has customFields []")
	}
	if n := len(m["orders"].([]any)); n != 29 {
		t.Errorf("%d orders listed, want 29", n)
	}
	raw, ok := acct.OrderJSON(ids[0])
	if !ok || !json.Valid(raw) {
		t.Errorf("OrderJSON: %v %s", ok, raw)
	}
}

func TestRateLimit(t *testing.T) {
	_, acct, srv, clk := setup(t, 0) // default: 10 per second
	codes := map[int]int{}
	for range 30 {
		codes[get(t, srv, "/ghana/api/v5/reference/statuses", testKey).code]++
	}
	if codes[200] != 10 || codes[503] != 20 {
		t.Errorf("codes %v, want 10x200 and 20x503 within one second", codes)
	}
	if acct.RateLimited() != 20 || acct.Requests(EndpointStatuses) != 30 {
		t.Errorf("RateLimited %d, Requests %d", acct.RateLimited(), acct.Requests(EndpointStatuses))
	}
	// Another key has its own budget.
	if r := get(t, srv, "/ghana/api/v5/reference/statuses", "key-other"); r.code != 200 {
		t.Errorf("other key: %d", r.code)
	}
	r := get(t, srv, "/ghana/api/v5/reference/statuses", testKey)
	if m := decode(t, r); r.code != 503 || m["success"] != false || m["errorMsg"] == "" {
		t.Errorf("over the limit: %d %s", r.code, r.body)
	}
	clk.Advance(time.Second)
	if r := get(t, srv, "/ghana/api/v5/reference/statuses", testKey); r.code != 200 {
		t.Errorf("after a second: %d", r.code)
	}
}

func TestCountedFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		code   int
		check  func(t *testing.T, r response)
	}{
		{"503", Faults{Fail503: 1}, 503, nil},
		{"429", Faults{Fail429: 1}, 429, nil},
		{"500", Faults{Fail500: 1}, 500, nil},
		{"html", Faults{HTML: 1}, 502, func(t *testing.T, r response) {
			if !strings.HasPrefix(r.ctype, "text/html") {
				t.Errorf("content type %s", r.ctype)
			}
		}},
		{"malformed", Faults{Malformed: 1}, 200, func(t *testing.T, r response) {
			if json.Valid(r.body) {
				t.Errorf("body is valid JSON: %s", r.body)
			}
		}},
		{"truncated", Faults{Truncated: 1}, 200, func(t *testing.T, r response) {
			if json.Valid(r.body) || !strings.HasPrefix(string(r.body), `{"success":true`) {
				t.Errorf("body %s", r.body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, acct, srv, _ := setup(t, -1)
			acct.CreateOrder("shop-a", "new")
			acct.SetFaults(tt.faults)
			r := get(t, srv, "/ghana/api/v5/orders/history", testKey)
			if r.code != tt.code {
				t.Fatalf("code %d, want %d", r.code, tt.code)
			}
			if tt.check != nil {
				tt.check(t, r)
			} else if m := decode(t, r); m["success"] != false {
				t.Errorf("body %s", r.body)
			}
			// Consumed: the next answer is normal.
			if r := get(t, srv, "/ghana/api/v5/orders/history", testKey); r.code != 200 || !json.Valid(r.body) {
				t.Errorf("after the fault: %d %s", r.code, r.body)
			}
			if f := acct.Faults(); f != (Faults{}) {
				t.Errorf("faults left: %+v", f)
			}
		})
	}
}

func TestFaultEndpointAndBurst(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	acct.SetFaults(Faults{Endpoint: EndpointOrders, Fail503: 3})
	if r := get(t, srv, "/ghana/api/v5/orders/history", testKey); r.code != 200 {
		t.Errorf("history hit by an orders fault: %d", r.code)
	}
	for i := range 3 {
		if r := get(t, srv, "/ghana/api/v5/orders", testKey); r.code != 503 {
			t.Errorf("orders request %d: %d", i, r.code)
		}
	}
	if r := get(t, srv, "/ghana/api/v5/orders", testKey); r.code != 200 {
		t.Errorf("after the burst: %d", r.code)
	}
	acct.UpdateFaults(func(f *Faults) { f.Endpoint = ""; f.Fail500 = 1 })
	if r := get(t, srv, "/ghana/api/credentials", testKey); r.code != 500 {
		t.Errorf("UpdateFaults: %d", r.code)
	}
}

func TestLatency(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	acct.SetFaults(Faults{Latency: 50 * time.Millisecond})
	start := time.Now()
	if r := get(t, srv, "/ghana/api/credentials", testKey); r.code != 200 {
		t.Fatalf("code %d", r.code)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v", d)
	}
	// A client that gives up is not kept waiting.
	acct.SetFaults(Faults{Latency: time.Hour})
	c := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ghana/api/credentials", nil)
	req.Header.Set("X-API-KEY", testKey)
	if _, err := c.Do(req); err == nil {
		t.Error("no timeout")
	}
}

func TestEmptyPagesFault(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	acct.CreateOrder("shop-a", "new")
	acct.SetFaults(Faults{EmptyPages: 1})
	m := decode(t, get(t, srv, "/ghana/api/v5/orders/history", testKey))
	if ids := historyIDs(t, m); len(ids) != 0 || m["pagination"].(map[string]any)["totalPageCount"].(float64) < 2 {
		t.Errorf("empty page fault: %v", m)
	}
	if ids := historyIDs(t, decode(t, get(t, srv, "/ghana/api/v5/orders/history", testKey))); len(ids) != 1 {
		t.Errorf("after the fault: %v", ids)
	}
}

func TestLateCommit(t *testing.T) {
	_, acct, srv, clk := setup(t, -1)
	id := acct.CreateOrder("shop-a", "new")
	acct.SetFaults(Faults{LateCommit: LateCommit{Probability: 1, Delay: 10 * time.Second}})
	late := acct.SetStatus(id, "approved")
	acct.SetFaults(Faults{})
	clk.Advance(time.Second)
	after := acct.SetStatus(id, "complete")
	if late >= after {
		t.Fatalf("late id %d not below %d", late, after)
	}
	history := func() []int64 {
		return historyIDs(t, decode(t, get(t, srv, "/ghana/api/v5/orders/history?limit=100", testKey)))
	}
	ids := history()
	if slices.Contains(ids, late) || !slices.Contains(ids, after) {
		t.Errorf("before the commit: %v (late %d, after %d)", ids, late, after)
	}
	if acct.Pending() != 1 {
		t.Errorf("Pending %d", acct.Pending())
	}
	if m := decode(t, get(t, srv, "/ghana/api/v5/orders/history?limit=100", testKey)); m["pagination"].(map[string]any)["totalCount"] != 2.0 {
		t.Errorf("totalCount counts the invisible entry: %v", m["pagination"])
	}
	clk.Advance(10 * time.Second)
	if ids := history(); !slices.Contains(ids, late) || !slices.IsSorted(ids) || len(ids) != 3 {
		t.Errorf("after the commit: %v", ids)
	}
	if acct.Pending() != 0 {
		t.Errorf("Pending %d", acct.Pending())
	}
	// Ground truth holds every change from the start.
	if tr := acct.Transitions(); len(tr) != 3 || tr[1].HistoryID != late {
		t.Errorf("transitions %+v", tr)
	}

	// CommitAll publishes at once.
	acct.SetFaults(Faults{LateCommit: LateCommit{Probability: 1, Delay: time.Hour}})
	h := acct.SetStatus(id, "cancel")
	acct.CommitAll()
	if ids := history(); !slices.Contains(ids, h) {
		t.Errorf("CommitAll: %v lacks %d", ids, h)
	}
}

func TestRandomWalkGroundTruth(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	acct.RandomWalk(rand.New(rand.NewPCG(7, 7)), 20, 500)
	tr := acct.Transitions()
	if len(tr) != 520 {
		t.Fatalf("%d transitions, want 20 creations + 500 changes", len(tr))
	}
	// Replay the visible history: each status entry matches the ground truth.
	var fromAPI []Transition
	since := int64(0)
	for {
		m := decode(t, get(t, srv, fmt.Sprintf("/ghana/api/v5/orders/history?filter[sinceId]=%d&limit=100", since), testKey))
		hist := m["history"].([]any)
		if len(hist) == 0 {
			break
		}
		for _, x := range hist {
			e := x.(map[string]any)
			since = int64(e["id"].(float64))
			if e["field"] != "status" {
				continue
			}
			var old string
			if ov, ok := e["oldValue"].(map[string]any); ok {
				old = ov["code"].(string)
			}
			order := e["order"].(map[string]any)
			fromAPI = append(fromAPI, Transition{
				HistoryID: since, OrderID: int64(order["id"].(float64)), Site: order["site"].(string),
				Old: old, New: e["newValue"].(map[string]any)["code"].(string), Created: e["created"] == true,
				Source: e["source"].(string),
			})
		}
	}
	sources := map[string]int{}
	for i := range tr {
		want := tr[i]
		sources[want.Source]++
		want.APIKey, want.APIKeyCurrent, want.At = "", false, time.Time{}
		if fromAPI[i] != want {
			t.Fatalf("entry %d: API %+v, ground truth %+v", i, fromAPI[i], want)
		}
	}
	if sources["api"] == 0 || sources["user"] == 0 {
		t.Errorf("sources %v", sources)
	}
}

func TestDeterministic(t *testing.T) {
	run := func() ([]Transition, json.RawMessage) {
		clk := newClock()
		sim := New(Options{Seed: 42, Now: clk.Now})
		a := sim.AddAccount(AccountOptions{Name: "x", APIKey: "k"})
		a.SetFaults(Faults{LateCommit: LateCommit{Probability: 0.3, Delay: time.Second}})
		a.RandomWalk(rand.New(rand.NewPCG(1, 1)), 5, 50)
		o, _ := a.OrderJSON(a.Orders()[0])
		return a.Transitions(), o
	}
	t1, o1 := run()
	t2, o2 := run()
	if !slices.Equal(t1, t2) || string(o1) != string(o2) {
		t.Error("same seed, different data")
	}
}

func TestConcurrentUse(t *testing.T) {
	sim, acct, srv, _ := setup(t, -1)
	other := sim.AddAccount(AccountOptions{Name: "togo", APIKey: "k2", RateLimit: -1})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			acct.RandomWalk(rand.New(rand.NewPCG(uint64(i), 0)), 5, 100)
			other.RandomWalk(rand.New(rand.NewPCG(uint64(i), 1)), 5, 100)
		})
		wg.Go(func() {
			for range 20 {
				get(t, srv, "/ghana/api/v5/orders/history?limit=100", testKey)
				acct.UpdateFaults(func(f *Faults) { f.Fail503++ })
				get(t, srv, "/togo/api/v5/orders?limit=100", "k2")
			}
		})
	}
	wg.Wait()
	if n := len(acct.Transitions()); n < 400 {
		t.Errorf("%d transitions", n)
	}
	if n := acct.Requests(""); n != 80 {
		t.Errorf("%d requests counted, want 80", n)
	}
}

func TestDeletionEntryAndOrderPages(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	for range 25 {
		acct.CreateOrder("shop-b", "new")
	}
	victim := acct.Orders()[3]
	h := acct.DeleteOrder(victim)
	m := decode(t, get(t, srv, fmt.Sprintf("/ghana/api/v5/orders/history?filter[sinceId]=%d", h-1), testKey))
	e := m["history"].([]any)[0].(map[string]any)
	if e["id"] != float64(h) || e["deleted"] != true || e["order"].(map[string]any)["id"] != float64(victim) {
		t.Errorf("deletion entry %v", e)
	}
	if _, ok := acct.OrderStatus(victim); ok {
		t.Error("deleted order still has a status")
	}
	var seen []int64
	for page := 1; page <= 2; page++ {
		m := decode(t, get(t, srv, fmt.Sprintf("/ghana/api/v5/orders?page=%d", page), testKey))
		pg := m["pagination"].(map[string]any)
		if pg["totalCount"] != 24.0 || pg["totalPageCount"] != 2.0 || pg["currentPage"] != float64(page) {
			t.Errorf("page %d: pagination %v", page, pg)
		}
		for _, o := range m["orders"].([]any) {
			seen = append(seen, int64(o.(map[string]any)["id"].(float64)))
		}
	}
	if len(seen) != 24 || slices.Contains(seen, victim) {
		t.Errorf("listed %d orders: %v", len(seen), seen)
	}
}

func TestSetRateLimit(t *testing.T) {
	_, acct, srv, clk := setup(t, 2)
	codes := func(n int) (ok int) {
		for range n {
			if get(t, srv, "/ghana/api/credentials", testKey).code == 200 {
				ok++
			}
		}
		return ok
	}
	if ok := codes(5); ok != 2 {
		t.Errorf("limit 2: %d answered", ok)
	}
	acct.SetRateLimit(-1)
	if ok := codes(30); ok != 30 {
		t.Errorf("unlimited: %d answered", ok)
	}
	acct.SetRateLimit(3)
	clk.Advance(500 * time.Millisecond)
	if ok := codes(5); ok != 3 {
		t.Errorf("limit 3: %d answered", ok)
	}
}

func TestDrive(t *testing.T) {
	_, acct, _, _ := setup(t, -1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		acct.Drive(ctx, rand.New(rand.NewPCG(3, 3)), 5, time.Millisecond)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(acct.Transitions()) < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if n := len(acct.Transitions()); n < 10 {
		t.Errorf("%d transitions after driving", n)
	}
	n := acct.HistoryLen()
	time.Sleep(5 * time.Millisecond)
	if acct.HistoryLen() != n {
		t.Error("Drive went on after ctx ended")
	}
}

// allHistory pages through the whole visible history with sinceId.
func allHistory(t *testing.T, srv *httptest.Server, key string) []map[string]any {
	t.Helper()
	var out []map[string]any
	since := int64(0)
	for {
		m := decode(t, get(t, srv, fmt.Sprintf("/ghana/api/v5/orders/history?filter[sinceId]=%d&limit=100", since), key))
		hist := m["history"].([]any)
		if len(hist) == 0 {
			return out
		}
		for _, x := range hist {
			e := x.(map[string]any)
			out = append(out, e)
			since = int64(e["id"].(float64))
		}
	}
}

// shape names the JSON shape of a value the way the published samples
// vary: null, "", a string, a number, a boolean, a list, or an object by
// its sorted keys.
func shape(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if v == "" {
			return `""`
		}
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "list"
	case map[string]any:
		return "{" + strings.Join(slices.Sorted(maps.Keys(v)), ",") + "}"
	}
	return fmt.Sprintf("%T", v)
}

// TestRandomWalkShapes: a random walk speaks like the published samples.
// Every shape they show turns up, in plausible proportions, and the status
// entries are still exactly the ground truth.
func TestRandomWalkShapes(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	acct.RandomWalk(rand.New(rand.NewPCG(5, 5)), 150, 2000)
	entries := allHistory(t, srv, testKey)
	if len(entries) != acct.HistoryLen() {
		t.Fatalf("%d entries served, %d in history", len(entries), acct.HistoryLen())
	}
	count := map[string]int{}
	statusEntries := 0
	for _, e := range entries {
		_, hasOrder := e["order"]
		switch {
		case !hasOrder:
			count["no order"]++
		case e["field"] == "status":
			statusEntries++
			if e["source"] == "code" {
				count["status by code"]++
			}
		}
		count["source "+e["source"].(string)]++
		if e["created"] == true {
			switch {
			case e["item"] != nil:
				count["item creation"]++
			case e["payment"] != nil:
				count["payment creation"]++
			}
		}
		for _, k := range []string{"item", "payment", "ancestor", "combinedTo"} {
			if e[k] != nil {
				count[k]++
			}
		}
		if e["field"] != "status" {
			count["value "+shape(e["oldValue"])]++
			count["value "+shape(e["newValue"])]++
		}
	}
	t.Logf("%d entries, %d status entries: %v", len(entries), statusEntries, count)
	if tr := acct.Transitions(); statusEntries != len(tr) {
		t.Errorf("%d status entries, %d transitions", statusEntries, len(tr))
	}
	for _, k := range []string{"no order", "status by code", "item creation", "payment creation", "item", "payment",
		"ancestor", "combinedTo", "value {id}", "value {id,site}", "value {externalId,id,site}", "value {id,name}",
		"value {from,to}", "value {code}", "value {id,offer}", "value {id,type}", "value number", "value boolean",
		`value ""`, "value null", "value string", "value list"} {
		if count[k] == 0 {
			t.Errorf("no %s in %d entries", k, len(entries))
		}
	}
	// Proportions like the samples': about one entry in six by "code"
	// (16 of 100 in api-client-php's testHistory), items and payments in
	// about a quarter, entries without an order rare.
	share := func(k string) float64 { return float64(count[k]) / float64(len(entries)) }
	for k, r := range map[string][2]float64{"source code": {0.08, 0.25}, "item": {0.05, 0.2}, "payment": {0.04, 0.2}, "no order": {0.001, 0.02}} {
		if s := share(k); s < r[0] || s > r[1] {
			t.Errorf("%s: %.3f of the entries, want %.3f..%.3f", k, s, r[0], r[1])
		}
	}

	// Orders: payments as an object, a list, [], {} or absent; custom
	// fields [] or an object with strings, booleans, numbers and lists.
	orders := map[string]int{}
	for page := 1; ; page++ {
		m := decode(t, get(t, srv, fmt.Sprintf("/ghana/api/v5/orders?limit=100&page=%d", page), testKey))
		list := m["orders"].([]any)
		if len(list) == 0 {
			break
		}
		for _, x := range list {
			o := x.(map[string]any)
			p, ok := o["payments"]
			switch {
			case !ok:
				orders["payments absent"]++
			case shape(p) == "list" && len(p.([]any)) == 0:
				orders["payments []"]++
			case shape(p) == "{}":
				orders["payments {}"]++
			case shape(p) == "list":
				orders["payments list"]++
			default:
				orders["payments object"]++
			}
			if cf, ok := o["customFields"].(map[string]any); ok {
				for _, v := range cf {
					orders["custom field "+shape(v)]++
				}
			}
		}
	}
	t.Logf("orders: %v", orders)
	for _, k := range []string{"payments absent", "payments []", "payments {}", "payments list", "payments object", "custom field string",
		"custom field boolean", "custom field number", "custom field list"} {
		if orders[k] == 0 {
			t.Errorf("no order with %s", k)
		}
	}
}

func TestMergeOrder(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	a := acct.CreateOrder("shop-a", "new")
	b := acct.CreateOrder("shop-a", "new")
	c := acct.CreateOrder("shop-b", "new")
	approved := acct.SetStatus(a, "approved")
	before := len(acct.Transitions())

	// A merge that leaves the surviving order's status alone.
	ids := acct.MergeOrder(a, b, "")
	if tr := acct.Transitions(); len(tr) != before || tr[len(tr)-1].HistoryID != approved {
		t.Fatalf("a merge without a status change changed the ground truth: %+v", tr)
	}
	if _, ok := acct.OrderStatus(a); ok {
		t.Error("the merged order still exists")
	}
	if _, ok := acct.OrderJSON(a); ok {
		t.Error("the merged order is still returned")
	}
	entries := allHistory(t, srv, testKey)
	byID := map[int64]map[string]any{}
	for _, e := range entries {
		byID[int64(e["id"].(float64))] = e
	}
	last := byID[ids[len(ids)-1]]
	if last["deleted"] != true || last["order"].(map[string]any)["id"] != float64(a) ||
		last["combinedTo"].(map[string]any)["id"] != float64(b) {
		t.Errorf("deletion entry %v", last)
	}
	for _, id := range ids[:len(ids)-1] {
		e := byID[id]
		if e["created"] != true || e["field"] != "order_product" || e["item"] == nil ||
			e["order"].(map[string]any)["id"] != float64(b) || e["ancestor"].(map[string]any)["id"] != float64(a) {
			t.Errorf("item entry of the merge %v", e)
		}
	}
	var items []any
	raw, _ := acct.OrderJSON(b)
	var ob map[string]any
	if err := json.Unmarshal(raw, &ob); err != nil {
		t.Fatal(err)
	}
	items = ob["items"].([]any)
	if len(items) < len(ids) {
		t.Errorf("order %d has %d items after taking %d", b, len(items), len(ids)-1)
	}

	// A merge that moves the surviving order into a new status: that
	// status change is a transition of the surviving order.
	ids = acct.MergeOrder(c, b, "approved")
	tr := acct.Transitions()
	if len(tr) != before+1 {
		t.Fatalf("%d transitions, want %d", len(tr), before+1)
	}
	got := tr[len(tr)-1]
	if got.OrderID != b || got.Old != "new" || got.New != "approved" || got.Created || got.HistoryID != ids[len(ids)-2] {
		t.Errorf("merge transition %+v (ids %v)", got, ids)
	}
	e := allHistory(t, srv, testKey)
	status := e[len(e)-2]
	if status["field"] != "status" || status["ancestor"].(map[string]any)["id"] != float64(c) ||
		status["newValue"].(map[string]any)["code"] != "approved" {
		t.Errorf("status entry of the merge %v", status)
	}
	if st, _ := acct.OrderStatus(b); st != "approved" {
		t.Errorf("surviving order in %q", st)
	}
}

func TestItemsPaymentsAndOddEntries(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	id := acct.CreateOrder("shop-a", "new")
	before, _ := acct.OrderJSON(id)
	item := acct.AddItem(id)
	payment := acct.AddPayment(id)
	odd := map[int64]OddEntry{}
	for _, o := range []OddEntry{OddOrderEmpty, OddOrderNull, OddOrderMissing, OddOrderWithoutID, OddOrderScalar, OddStatusValue} {
		odd[acct.AppendOddEntry(id, o)] = o
	}
	if tr := acct.Transitions(); len(tr) != 1 || !tr[0].Created {
		t.Errorf("transitions %+v, want only the creation", tr)
	}
	after, _ := acct.OrderJSON(id)
	var o1, o2 struct {
		Items    []any `json:"items"`
		Payments any   `json:"payments"`
	}
	if json.Unmarshal(before, &o1) != nil || json.Unmarshal(after, &o2) != nil || len(o2.Items) != len(o1.Items)+1 {
		t.Errorf("items %d -> %d", len(o1.Items), len(o2.Items))
	}
	for _, e := range allHistory(t, srv, testKey) {
		hid := int64(e["id"].(float64))
		switch {
		case hid == item:
			if e["created"] != true || e["field"] != "order_product" || shape(e["item"]) != "{id,initialPrice,offer,quantity,status}" ||
				shape(e["newValue"]) != "{id,offer}" {
				t.Errorf("item creation %v", e)
			}
		case hid == payment:
			if e["created"] != true || e["field"] != "payments" || shape(e["payment"]) != "{amount,id,status,type}" ||
				shape(e["newValue"]) != "{id,type}" {
				t.Errorf("payment creation %v", e)
			}
		case odd[hid] != oddNone:
			order, has := e["order"]
			want := map[OddEntry]string{OddOrderEmpty: "list", OddOrderNull: "null", OddOrderWithoutID: "{externalId,managerId,site,status}",
				OddOrderScalar: "string", OddStatusValue: "{id,managerId,site,status}"}[odd[hid]]
			if odd[hid] == OddOrderMissing {
				if has {
					t.Errorf("entry %d has an order: %v", hid, e)
				}
			} else if shape(order) != want && !(want == "{id,managerId,site,status}" && shape(order) == "{externalId,id,managerId,site,status}") &&
				!(want == "{externalId,managerId,site,status}" && shape(order) == "{managerId,site,status}") {
				t.Errorf("odd %d: order %v, want %s", odd[hid], order, want)
			}
			if odd[hid] == OddStatusValue && e["newValue"] != 7.0 {
				t.Errorf("odd status value %v", e)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown odd shape did not panic")
		}
	}()
	acct.AppendOddEntry(id, OddEntry(99))
}

func TestHistoryOrderFilter(t *testing.T) {
	_, acct, srv, clk := setup(t, -1)
	a := acct.CreateOrder("shop-a", "new")
	b := acct.CreateOrder("shop-a", "new")
	acct.SetStatus(b, "approved")
	acct.SetFaults(Faults{LateCommit: LateCommit{Probability: 1, Delay: 10 * time.Second}})
	late := acct.SetStatus(a, "approved")
	acct.SetFaults(Faults{})
	clk.Advance(time.Second)
	h := acct.SetStatus(a, "complete")
	ids := func(q string) ([]int64, float64) {
		m := decode(t, get(t, srv, "/ghana/api/v5/orders/history?"+q, testKey))
		return historyIDs(t, m), m["pagination"].(map[string]any)["totalCount"].(float64)
	}
	got, total := ids(fmt.Sprintf("filter[orderId]=%d&limit=100", a))
	if len(got) != 2 || got[1] != h || total != 2 || slices.Contains(got, late) {
		t.Errorf("order %d: ids %v total %v; the late entry %d must stay invisible", a, got, total, late)
	}
	got, _ = ids(fmt.Sprintf("filter[orderId]=%d&filter[sinceId]=%d", a, got[0]))
	if !slices.Equal(got, []int64{h}) {
		t.Errorf("with sinceId: %v", got)
	}
	got, _ = ids(fmt.Sprintf("filter[orderId]=%d&filter[startDate]=%s", a, url.QueryEscape("2026-11-23 09:00:01")))
	if !slices.Equal(got, []int64{h}) {
		t.Errorf("with startDate: %v", got)
	}
	clk.Advance(10 * time.Second)
	if got, total = ids(fmt.Sprintf("filter[orderId]=%d", a)); len(got) != 3 || got[1] != late || total != 3 {
		t.Errorf("after the commit: %v total %v", got, total)
	}
	if got, _ = ids("filter[orderId]=999999"); len(got) != 0 {
		t.Errorf("unknown order: %v", got)
	}
	if r := get(t, srv, "/ghana/api/v5/orders/history?filter[orderId]=x", testKey); r.code != 400 {
		t.Errorf("filter[orderId]=x: %d", r.code)
	}
}

func TestOrdersFilters(t *testing.T) {
	clk := newClock()
	tz := time.FixedZone("UTC+3", 3*3600)
	sim := New(Options{Seed: 1, Now: clk.Now})
	acct := sim.AddAccount(AccountOptions{Name: "ghana", APIKey: testKey, Sites: []string{"shop-a", "shop-b"}, RateLimit: -1, TimeZone: tz})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	a := acct.CreateOrder("shop-a", "new") // 09:00:00 UTC = 12:00:00 local
	b := acct.CreateOrder("shop-b", "new")
	c := acct.CreateOrder("shop-a", "new")
	clk.Advance(90 * time.Second) // 12:01:30 local
	acct.SetStatus(a, "approved")
	acct.SetStatus(b, "approved")
	acct.SetStatus(c, "complete")
	clk.Advance(500 * time.Millisecond)
	acct.SetStatus(b, "cancel")
	orders := func(q url.Values) []int64 {
		t.Helper()
		q.Set("limit", "20")
		m := decode(t, get(t, srv, "/ghana/api/v5/orders?"+q.Encode(), testKey))
		var ids []int64
		for _, o := range m["orders"].([]any) {
			om := o.(map[string]any)
			ids = append(ids, int64(om["id"].(float64)))
			if om["statusUpdatedAt"] != "2026-11-23 12:01:30" && om["statusUpdatedAt"] != "2026-11-23 12:01:31" {
				t.Errorf("order %v: statusUpdatedAt %v", om["id"], om["statusUpdatedAt"])
			}
		}
		if int(m["pagination"].(map[string]any)["totalCount"].(float64)) != len(ids) {
			t.Errorf("totalCount %v, %d orders", m["pagination"], len(ids))
		}
		return ids
	}
	tests := []struct {
		name string
		q    url.Values
		want []int64
	}{
		{"one status", url.Values{"filter[extendedStatus][]": {"approved"}}, []int64{a}},
		{"several statuses", url.Values{"filter[extendedStatus][]": {"approved", "complete"}}, []int64{c, a}},
		{"indexed keys", url.Values{"filter[extendedStatus][0]": {"approved"}, "filter[extendedStatus][1]": {"cancel"}}, []int64{b, a}},
		{"site", url.Values{"filter[extendedStatus][]": {"approved", "complete", "cancel"}, "filter[sites][]": {"shop-a"}}, []int64{c, a}},
		{"from, to the second, local time", url.Values{"filter[statusUpdatedAtFrom]": {"2026-11-23 12:01:30"}}, []int64{c, b, a}},
		{"from later", url.Values{"filter[statusUpdatedAtFrom]": {"2026-11-23 12:01:31"}}, nil},
		{"from a date", url.Values{"filter[statusUpdatedAtFrom]": {"2026-11-23"}, "filter[sites][]": {"shop-b"}}, []int64{b}},
		{"ids and status", url.Values{"filter[ids][]": {fmt.Sprint(a), fmt.Sprint(b)}, "filter[extendedStatus][]": {"cancel"}}, []int64{b}},
	}
	for _, tt := range tests {
		if got := orders(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if r := get(t, srv, "/ghana/api/v5/orders?filter[statusUpdatedAtFrom]=today", testKey); r.code != 400 {
		t.Errorf("bad date: %d", r.code)
	}
}

func TestSitesAndCredentials(t *testing.T) {
	sim := New(Options{Seed: 1})
	sim.AddAccount(AccountOptions{Name: "full", APIKey: "k1", Sites: []string{"a", "b"}, RateLimit: -1})
	sim.AddAccount(AccountOptions{Name: "sel", APIKey: "k2", ExtraKeys: []string{"k3"}, Sites: []string{"a", "b", "c"},
		KeySites: []string{"c", "a"}, CredentialsWithoutSites: true, RateLimit: -1})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	tests := []struct {
		path, key, access string
		sitesAvailable    any
		sites             []string
	}{
		{"/full", "k1", "access_full", []any{"a", "b"}, []string{"a", "b"}},
		{"/sel", "k2", "access_selective", nil, []string{"a", "c"}},
		{"/sel", "k3", "access_full", nil, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		m := decode(t, get(t, srv, tt.path+"/api/credentials", tt.key))
		if m["siteAccess"] != tt.access || fmt.Sprint(m["sitesAvailable"]) != fmt.Sprint(tt.sitesAvailable) {
			t.Errorf("%s %s: credentials %v", tt.path, tt.key, m)
		}
		if _, ok := m["sitesAvailable"]; ok != (tt.sitesAvailable != nil) {
			t.Errorf("%s %s: sitesAvailable present %v", tt.path, tt.key, ok)
		}
		sites := decode(t, get(t, srv, tt.path+"/api/v5/reference/sites", tt.key))["sites"].(map[string]any)
		if got := slices.Sorted(maps.Keys(sites)); !slices.Equal(got, tt.sites) {
			t.Errorf("%s %s: sites %v, want %v", tt.path, tt.key, got, tt.sites)
		}
		for code, s := range sites {
			if s.(map[string]any)["code"] != code {
				t.Errorf("site %s: %v", code, s)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a key site outside the account's sites did not panic")
		}
	}()
	sim.AddAccount(AccountOptions{Name: "bad", APIKey: "k", Sites: []string{"a"}, KeySites: []string{"z"}})
}
