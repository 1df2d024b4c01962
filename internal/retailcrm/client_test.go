package retailcrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// testKey is distinctive so that any leak into a log line, URL or error is
// found by a plain substring search.
const testKey = "K3y-SECRET-must-not-leak-0451"

// reply is one canned answer of fakeCRM.
type reply struct {
	code   int
	ctype  string // default application/json
	header map[string]string
	body   []byte
	hang   bool // wait until the client gives up
	stall  bool // send the headers and part of the body, then wait until the client gives up
	hijack bool // close the connection without an answer
}

func file(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonReply(code int, body []byte) reply { return reply{code: code, body: body} }

// seen is what fakeCRM recorded of one request.
type seen struct {
	path, rawQuery string
	header         http.Header
	at             time.Time
}

// fakeCRM replays replies in order (the last one repeats) under /acme and
// records every request.
type fakeCRM struct {
	mu      sync.Mutex
	replies []reply
	reqs    []seen
	srv     *httptest.Server
}

func newFake(t *testing.T, replies ...reply) *fakeCRM {
	t.Helper()
	f := &fakeCRM{replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCRM) baseURL() string { return f.srv.URL + "/acme" }

func (f *fakeCRM) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{r.URL.Path, r.URL.RawQuery, r.Header.Clone(), time.Now()})
	rp := f.replies[min(len(f.reqs), len(f.replies))-1]
	f.mu.Unlock()
	switch {
	case rp.hang:
		<-r.Context().Done()
		return
	case rp.hijack:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	ct := rp.ctype
	if ct == "" {
		ct = "application/json; charset=UTF-8"
	}
	w.Header().Set("Content-Type", ct)
	for k, v := range rp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rp.code)
	if rp.stall {
		_, _ = w.Write([]byte(`{"success": true, "statuses": {`))
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
		return
	}
	_, _ = w.Write(rp.body)
}

func (f *fakeCRM) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// newTestClient builds a fast-retrying client that logs everything at
// Debug into a buffer, and checks at cleanup that the key never reached it.
func newTestClient(t *testing.T, base string, edit func(*Options)) (*Client, *testkit.SyncBuffer) {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	opts := Options{
		BaseURL:      base,
		APIKey:       testKey,
		RateLimit:    -1,
		Timeout:      2 * time.Second,
		MaxRetries:   2,
		RetryWait:    time.Millisecond,
		RetryMaxWait: 5 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), testKey) {
			t.Errorf("API key leaked into the log:\n%s", logs.String())
		}
	})
	return c, logs
}

func checkRequest(t *testing.T, r seen, wantPath string) {
	t.Helper()
	if r.path != wantPath {
		t.Errorf("path = %q, want %q", r.path, wantPath)
	}
	if got := r.header.Get("X-API-KEY"); got != testKey {
		t.Errorf("X-API-KEY = %q", got)
	}
	if strings.Contains(r.rawQuery, testKey) || strings.Contains(strings.ToLower(r.rawQuery), "apikey") {
		t.Errorf("key in query: %s", r.rawQuery)
	}
	if ua := r.header.Get("User-Agent"); !strings.HasPrefix(ua, "retailcrm-poller/") {
		t.Errorf("User-Agent = %q", ua)
	}
}

func TestHistory(t *testing.T) {
	body := file(t, "history.json")
	f := newFake(t, jsonReply(200, body))
	c, _ := newTestClient(t, f.baseURL(), nil)
	accra, err := time.LoadLocation("Africa/Lagos") // UTC+1, no DST
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	page, err := c.History(context.Background(), HistoryFilter{
		SinceID:   7039,
		StartDate: time.Date(2018, 10, 3, 10, 0, 0, 0, time.UTC),
		Location:  accra,
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	checkRequest(t, reqs[0], "/acme/api/v5/orders/history")
	q := mustQuery(t, reqs[0].rawQuery)
	for k, want := range map[string]string{
		"filter[sinceId]": "7039", "filter[startDate]": "2018-10-03 11:00:00", "limit": "100", "page": "", // never with sinceId
	} {
		if got := q.Get(k); got != want {
			t.Errorf("query %s = %q, want %q", k, got, want)
		}
	}

	if len(page.History) != 5 || page.Pagination.TotalCount != 5 || page.GeneratedAt != "2018-10-03 11:30:02" {
		t.Fatalf("page = %+v", page)
	}
	type want struct {
		id            int64
		created       bool
		field, source string
		oldCode       string
		newCode       string
		orderID       int64
		site, status  string
		current       *bool
	}
	yes, no := true, false
	wants := []want{
		{7040, true, "status", "user", "", "new", 5402, "gh-shop", "new", nil},
		{7044, false, "status", "user", "new", "approved", 5402, "gh-shop", "approved", nil},
		{7051, false, "manager_comment", "api", "", "call back after 6pm", 5402, "gh-shop", "approved", &yes},
		{7052, false, "summ", "code", "", "", 5402, "gh-shop", "approved", nil},
		{7060, false, "status", "api", "approved", "cancel", 5399, "gh-shop-2", "cancel", &no},
	}
	for i, w := range wants {
		e := page.History[i]
		if e.ID != w.id || e.Created != w.created || e.Field != w.field || e.Source != w.source ||
			e.OldValue.Code() != w.oldCode || e.NewValue.Code() != w.newCode ||
			e.Order == nil || e.Order.ID != w.orderID || e.Order.Site != w.site || e.Order.Status != w.status {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
		if (e.APIKey == nil) != (w.current == nil) || (e.APIKey != nil && e.APIKey.Current != *w.current) {
			t.Errorf("entry %d apiKey = %+v, want %v", i, e.APIKey, w.current)
		}
	}
	if u := page.History[0].User; u == nil || u.ID != 12 {
		t.Errorf("user = %+v", u)
	}
	if got := string(page.History[3].NewValue.Raw); got != "150.25" {
		t.Errorf("numeric newValue raw = %q", got)
	}

	// Each order's Raw is byte for byte what the API sent.
	var orig struct {
		History []struct{ Order json.RawMessage } `json:"history"`
	}
	if err := json.Unmarshal(body, &orig); err != nil {
		t.Fatal(err)
	}
	for i, e := range page.History {
		if !bytes.Equal(e.Order.Raw, orig.History[i].Order) {
			t.Errorf("entry %d: order raw differs:\n%s\nwant\n%s", i, e.Order.Raw, orig.History[i].Order)
		}
	}
	golden(t, "history.golden.json", page)
}

func TestHistoryDefaults(t *testing.T) {
	f := newFake(t, jsonReply(200, []byte(`{"success":true,"history":[],"pagination":{"limit":"20","totalCount":0,"currentPage":1,"totalPageCount":0}}`)))
	c, _ := newTestClient(t, f.baseURL()+"/", nil) // a trailing slash must not double
	page, err := c.History(context.Background(), HistoryFilter{Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.History) != 0 || page.Pagination.Limit != 20 {
		t.Errorf("page = %+v", page)
	}
	r := f.requests()[0]
	checkRequest(t, r, "/acme/api/v5/orders/history")
	if r.rawQuery != "limit=20" {
		t.Errorf("query = %q, want only limit", r.rawQuery)
	}
}

// golden compares v, as indented JSON, with testdata/name (-update rewrites it).
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the decoded value (go test -update rewrites it):\n%s", path, got)
	}
}

func TestOrders(t *testing.T) {
	body := file(t, "orders.json")
	f := newFake(t, jsonReply(200, body))
	c, logs := newTestClient(t, f.baseURL(), nil)
	orders, err := c.Orders(context.Background(), []int64{5402, 5399, 5398, 1})
	if err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	checkRequest(t, r, "/acme/api/v5/orders")
	q := mustQuery(t, r.rawQuery)
	if ids := q["filter[ids][]"]; !slices.Equal(ids, []string{"5402", "5399", "5398", "1"}) || q.Get("limit") != "100" {
		t.Errorf("query = %v", q)
	}

	if len(orders) != 3 {
		t.Fatalf("%d orders, want 3 (the one without id skipped)", len(orders))
	}
	if !strings.Contains(logs.String(), "order skipped") {
		t.Errorf("skipped order not logged:\n%s", logs)
	}
	o := orders[0]
	if o.ID != 5402 || o.Number != "5402A" || o.ExternalID != "ext-5402" || o.Site != "gh-shop" || o.Status != "approved" {
		t.Errorf("order 0 = %+v", o)
	}
	wantPay := map[string]Payment{
		"81": {ID: 81, Status: "not-paid", Type: "cash", Amount: 100},
		"82": {ID: 82, Status: "paid", Type: "bank-card", Amount: 65.75},
	}
	if fmt.Sprint(o.Payments) != fmt.Sprint(wantPay) {
		t.Errorf("payments = %+v", o.Payments)
	}
	if o.CustomFields == nil || len(o.CustomFields) != 0 {
		t.Errorf("customFields [] = %#v, want empty map", o.CustomFields)
	}

	o = orders[1] // numbers where strings are expected, payments [], customFields {}
	if o.ID != 5399 || o.Number != "5399" || o.ExternalID != "88123" || o.Status != "cancel" {
		t.Errorf("order 1 = %+v", o)
	}
	if o.Payments == nil || len(o.Payments) != 0 {
		t.Errorf("payments [] = %#v, want empty map", o.Payments)
	}
	if len(o.CustomFields) != 4 || string(o.CustomFields["gift"]) != "true" || string(o.CustomFields["tags"]) != `["a", "b"]` {
		t.Errorf("customFields = %q", o.CustomFields)
	}

	o = orders[2] // every light field of the wrong type: only the id counts
	if o.ID != 5398 || o.Number != "" || o.ExternalID != "" || o.Site != "" || o.Status != "approved" ||
		o.Payments != nil || o.CustomFields != nil {
		t.Errorf("order 2 = %+v", o)
	}

	var orig struct{ Orders []json.RawMessage }
	if err := json.Unmarshal(body, &orig); err != nil {
		t.Fatal(err)
	}
	for i, o := range orders {
		if !bytes.Equal(o.Raw, orig.Orders[i]) {
			t.Errorf("order %d raw differs", i)
		}
		if out, _ := json.Marshal(o); !bytes.Equal(out, mustCompact(t, orig.Orders[i])) {
			t.Errorf("order %d marshals as %s", i, out)
		}
	}
}

func mustCompact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestOrdersBatchBounds(t *testing.T) {
	f := newFake(t, jsonReply(200, []byte(`{"success":true,"orders":[]}`)))
	c, _ := newTestClient(t, f.baseURL(), nil)
	if got, err := c.Orders(context.Background(), nil); err != nil || got != nil {
		t.Errorf("no ids: %v, %v", got, err)
	}
	ids := make([]int64, MaxOrderIDs+1)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	if _, err := c.Orders(context.Background(), ids); err == nil || !strings.Contains(err.Error(), "at most 100") {
		t.Errorf("101 ids: err = %v", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests for calls that need none", n)
	}
	got, err := c.Orders(context.Background(), ids[:MaxOrderIDs])
	if err != nil || len(got) != 0 {
		t.Errorf("100 ids: %v, %v", got, err)
	}
	if q := mustQuery(t, f.requests()[0].rawQuery); len(q["filter[ids][]"]) != MaxOrderIDs {
		t.Errorf("%d ids sent", len(q["filter[ids][]"]))
	}
}

func TestStatusesAndCredentials(t *testing.T) {
	f := newFake(t, jsonReply(200, file(t, "statuses.json")), jsonReply(200, file(t, "statuses_empty.json")),
		jsonReply(200, file(t, "credentials.json")))
	c, _ := newTestClient(t, f.baseURL(), nil)
	ctx := context.Background()

	st, err := c.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{
		"new":      {Name: "New", Code: "new", Active: true, Ordering: 10, Group: "new"},
		"approved": {Name: "Approved", Code: "approved", Active: true, Ordering: 20, Group: "approval"},
		"cancel":   {Name: "Cancelled", Code: "cancel", Active: false, Ordering: 990, Group: "cancel"},
	}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("statuses = %+v", st)
	}
	st, err = c.Statuses(ctx)
	if err != nil || st == nil || len(st) != 0 {
		t.Errorf("statuses [] = %#v, %v", st, err)
	}

	cr, err := c.Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cr.SitesAvailable, []string{"gh-shop", "gh-shop-2"}) || cr.SiteAccess != "access_selective" ||
		!slices.Equal(cr.Scopes, []string{"order_read", "order_write", "reference_read"}) {
		t.Errorf("credentials = %+v", cr)
	}
	reqs := f.requests()
	checkRequest(t, reqs[0], "/acme/api/v5/reference/statuses")
	checkRequest(t, reqs[2], "/acme/api/credentials")
}

func TestErrors(t *testing.T) {
	const hist = "/api/v5/orders/history"
	tests := []struct {
		name     string
		replies  []reply
		sentinel error  // errors.Is; nil for *APIError
		apiCode  int    // for *APIError
		msg      string // exact error text, or a prefix when prefix is set
		prefix   bool
		attempts int
	}{
		{
			name:     "403 wrong key",
			replies:  []reply{jsonReply(403, file(t, "forbidden.json"))},
			sentinel: ErrUnauthorized,
			msg:      `retailcrm: wrong API key: ` + hist + `: HTTP 403 Wrong "apiKey" value.`,
			attempts: 1,
		},
		{
			name:     "401 without body",
			replies:  []reply{{code: 401, ctype: "text/plain"}},
			sentinel: ErrUnauthorized,
			msg:      `retailcrm: wrong API key: ` + hist + `: HTTP 401`,
			attempts: 1,
		},
		{
			name:     "HTML 404 page",
			replies:  []reply{{code: 404, ctype: "text/html; charset=utf-8", body: file(t, "not_found.html")}},
			sentinel: ErrAccountNotFound,
			msg:      `retailcrm: no RetailCRM account at this URL: ` + hist + `: HTTP 404 with an HTML page`,
			attempts: 1,
		},
		{
			name:     "HTML 200 page without content type",
			replies:  []reply{{code: 200, ctype: "application/octet-stream", body: file(t, "not_found.html")}},
			sentinel: ErrAccountNotFound,
			msg:      `retailcrm: no RetailCRM account at this URL: ` + hist + `: HTTP 200 with an HTML page`,
			attempts: 1,
		},
		{
			name:     "redirect",
			replies:  []reply{{code: 301, header: map[string]string{"Location": "https://elsewhere.example/"}}},
			sentinel: ErrAccountNotFound,
			msg:      `retailcrm: no RetailCRM account at this URL: ` + hist + `: HTTP 301 redirect to "https://elsewhere.example/"`,
			attempts: 1,
		},
		{
			name:     "400 errors map",
			replies:  []reply{jsonReply(400, file(t, "error_filter.json"))},
			apiCode:  400,
			msg:      `retailcrm: ` + hist + `: 400 Errors in the filter: filter[sinceId]: must be a number; filter[startDate]: This value is not valid.`,
			attempts: 1,
		},
		{
			name:     "400 errors list",
			replies:  []reply{jsonReply(400, file(t, "error_list.json"))},
			apiCode:  400,
			msg:      `retailcrm: ` + hist + `: 400 Order is not loaded: Order with id 5402 not found; Site gh-shop is not available`,
			attempts: 1,
		},
		{
			name:     "success false with 200",
			replies:  []reply{jsonReply(200, []byte(`{"success":false,"errorMsg":"Not allowed"}`))},
			apiCode:  200,
			msg:      `retailcrm: ` + hist + `: 200 Not allowed`,
			attempts: 1,
		},
		{
			name:     "503 after retries",
			replies:  []reply{jsonReply(503, file(t, "rate_limited.json"))},
			sentinel: ErrRateLimited,
			msg:      `retailcrm: rate limited: ` + hist + `: HTTP 503 Service temporarily unavailable`,
			attempts: 3,
		},
		{
			name:     "429 after retries",
			replies:  []reply{{code: 429, ctype: "text/plain", body: []byte("Too Many Requests"), header: map[string]string{"Retry-After": "0"}}},
			sentinel: ErrRateLimited,
			msg:      `retailcrm: rate limited: ` + hist + `: HTTP 429 (Retry-After 0)`,
			attempts: 3,
		},
		{
			name:     "500 JSON after retries",
			replies:  []reply{jsonReply(500, file(t, "server_error.json"))},
			apiCode:  500,
			msg:      `retailcrm: ` + hist + `: 500 Internal Server Error`,
			attempts: 3,
		},
		{
			name:     "502 nginx page after retries",
			replies:  []reply{{code: 502, ctype: "text/html", body: file(t, "bad_gateway.html")}},
			sentinel: ErrUnavailable,
			msg:      `retailcrm: server error: ` + hist + `: HTTP 502`,
			attempts: 3,
		},
		{
			name:     "truncated JSON after retries",
			replies:  []reply{jsonReply(200, file(t, "truncated.json"))},
			sentinel: ErrBadResponse,
			msg:      `retailcrm: malformed response: ` + hist + `: HTTP 200: `,
			prefix:   true,
			attempts: 3,
		},
		{
			name:     "not JSON at all",
			replies:  []reply{{code: 200, ctype: "text/plain", body: []byte("Fatal error: out of memory")}},
			sentinel: ErrBadResponse,
			msg:      `retailcrm: malformed response: ` + hist + `: HTTP 200: `,
			prefix:   true,
			attempts: 3,
		},
		{
			name:     "history not a list",
			replies:  []reply{jsonReply(200, []byte(`{"success":true,"history":{"7":{"id":7}}}`))},
			sentinel: ErrBadResponse,
			msg:      `retailcrm: malformed response: ` + hist + `: history: not a list: "{\"7\":{\"id\":7}}"`,
			attempts: 1,
		},
		{
			name:     "history entry without id is not an error",
			replies:  []reply{jsonReply(200, []byte(`{"success":true,"history":[{"id":"x","field":"status"}]}`))},
			attempts: 1,
		},
		{
			name:     "success as a string",
			replies:  []reply{jsonReply(200, []byte(`{"success":"true","history":[]}`))},
			attempts: 1,
		},
		{
			name:     "success false as a string",
			replies:  []reply{jsonReply(200, []byte(`{"success":"false","errorMsg":"Not allowed"}`))},
			apiCode:  200,
			msg:      `retailcrm: ` + hist + `: 200 Not allowed`,
			attempts: 1,
		},
		{
			name:     "success 0",
			replies:  []reply{jsonReply(200, []byte(`{"success":0}`))},
			apiCode:  200,
			msg:      `retailcrm: ` + hist + `: 200 OK`,
			attempts: 1,
		},
		{
			name:     "unrecognised success leaves it to the status code",
			replies:  []reply{jsonReply(200, []byte(`{"success":"maybe","history":[]}`))},
			attempts: 1,
		},
		{
			name:     "account does not exist",
			replies:  []reply{jsonReply(400, []byte(`{"success": false, "errorMsg": "Account does not exist"}`))},
			sentinel: ErrAccountNotFound,
			msg:      `retailcrm: no RetailCRM account at this URL: ` + hist + `: HTTP 400 Account does not exist`,
			attempts: 1,
		},
		{
			name:     "account does not exist, with a full stop and 200",
			replies:  []reply{jsonReply(200, []byte(`{"success": false, "errorMsg": "Account does not exist."}`))},
			sentinel: ErrAccountNotFound,
			msg:      `retailcrm: no RetailCRM account at this URL: ` + hist + `: HTTP 200 Account does not exist.`,
			attempts: 1,
		},
		{
			name:     "truncated once, then fine",
			replies:  []reply{jsonReply(200, file(t, "truncated.json")), jsonReply(200, file(t, "history.json"))},
			attempts: 2,
		},
		{
			name:     "503 twice, then fine",
			replies:  []reply{jsonReply(503, nil), {code: 503, ctype: "text/html", body: file(t, "bad_gateway.html")}, jsonReply(200, file(t, "history.json"))},
			attempts: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.replies...)
			c, _ := newTestClient(t, f.baseURL(), nil)
			_, err := c.History(context.Background(), HistoryFilter{SinceID: 5})
			reqs := f.requests()
			if len(reqs) != tt.attempts {
				t.Errorf("%d attempts, want %d", len(reqs), tt.attempts)
			}
			for _, r := range reqs { // every retry sends the same request
				checkRequest(t, r, "/acme/api/v5/orders/history")
				if r.rawQuery != "filter%5BsinceId%5D=5&limit=100" {
					t.Errorf("query = %q", r.rawQuery)
				}
			}
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("key in error: %v", err)
			}
			if got := err.Error(); got != tt.msg && !(tt.prefix && strings.HasPrefix(got, tt.msg)) {
				t.Errorf("error\n got %s\nwant %s", got, tt.msg)
			}
			var ae *APIError
			if tt.sentinel != nil {
				if !errors.Is(err, tt.sentinel) {
					t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
				}
				if errors.As(err, &ae) {
					t.Errorf("unexpected *APIError %v", ae)
				}
				return
			}
			if !errors.As(err, &ae) || ae.StatusCode != tt.apiCode {
				t.Errorf("err = %#v, want *APIError with status %d", err, tt.apiCode)
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	tests := []struct {
		name    string
		reply   reply
		timeout bool
		code    int // observed for each attempt
	}{
		{"connection closed", reply{hijack: true}, false, 0},
		{"timeout", reply{hang: true}, true, 0},
		{"timeout while reading the body", reply{code: 200, stall: true}, true, 200}, // the attempt's bound covers the body
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.reply)
			var mu sync.Mutex
			var codes []string
			c, logs := newTestClient(t, f.baseURL(), func(o *Options) {
				o.Timeout = 100 * time.Millisecond
				o.Observe = func(endpoint string, code int) {
					mu.Lock()
					defer mu.Unlock()
					codes = append(codes, fmt.Sprintf("%s %d", endpoint, code))
				}
			})
			_, err := c.Statuses(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "retailcrm: /api/v5/reference/statuses: ") || strings.Contains(err.Error(), testKey) {
				t.Errorf("err = %v", err)
			}
			var ne net.Error
			if isTimeout := errors.As(err, &ne) && ne.Timeout(); isTimeout != tt.timeout {
				t.Errorf("timeout = %v, want %v (%v)", isTimeout, tt.timeout, err)
			}
			for _, s := range []error{ErrUnauthorized, ErrAccountNotFound, ErrRateLimited, ErrBadResponse, ErrUnavailable} {
				if errors.Is(err, s) {
					t.Errorf("transport error is %v", s)
				}
			}
			// Resty's messages and the retry log reach slog (and the cleanup
			// checks that the key is in neither).
			if l := logs.String(); !strings.Contains(l, "level=DEBUG msg=\"resty: ") ||
				!strings.Contains(l, "retailcrm: retryable answer") || !strings.Contains(l, "endpoint=statuses") {
				t.Errorf("log lacks resty or retry lines:\n%s", l)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := slices.Repeat([]string{fmt.Sprintf("statuses %d", tt.code)}, 3); !slices.Equal(codes, want) {
				t.Errorf("observed %q, want %q", codes, want)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	f := newFake(t, jsonReply(503, nil), jsonReply(200, file(t, "orders.json")), jsonReply(403, file(t, "forbidden.json")))
	var mu sync.Mutex
	var codes []string
	c, _ := newTestClient(t, f.baseURL(), func(o *Options) {
		o.Observe = func(endpoint string, code int) {
			mu.Lock()
			defer mu.Unlock()
			codes = append(codes, fmt.Sprintf("%s %d", endpoint, code))
		}
	})
	if _, err := c.Orders(context.Background(), []int64{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Credentials(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"orders 503", "orders 200", "credentials 403"}; !slices.Equal(codes, want) {
		t.Errorf("observed %q, want %q", codes, want)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	f := newFake(t,
		reply{code: 503, body: file(t, "rate_limited.json"), header: map[string]string{"Retry-After": "1"}},
		jsonReply(200, file(t, "history.json")))
	c, _ := newTestClient(t, f.baseURL(), func(o *Options) { o.RetryMaxWait = 3 * time.Second })
	if _, err := c.History(context.Background(), HistoryFilter{}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d attempts, want 2", len(reqs))
	}
	// A lower bound only: the retry may not come sooner than asked.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 950*time.Millisecond {
		t.Errorf("retried after %v, Retry-After asked for 1s", gap)
	}
}

func TestRetryAfterTooLongStops(t *testing.T) {
	f := newFake(t, reply{code: 503, body: file(t, "rate_limited.json"), header: map[string]string{"Retry-After": "120"}})
	c, _ := newTestClient(t, f.baseURL(), func(o *Options) { o.RetryMaxWait = time.Second })
	_, err := c.History(context.Background(), HistoryFilter{})
	if !errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), "(Retry-After 120)") {
		t.Errorf("err = %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		tooBig bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"-3", 0, false},
		{"3", 3 * time.Second, false},
		{" 7 ", 7 * time.Second, false},
		{"61", 0, true},
		{"99999999999999", 0, true},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, false},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0, false},
		{now.Add(time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := retryAfter(tt.header, now, time.Minute)
		var tl *retryAfterTooLong
		if got != tt.want || errors.As(err, &tl) != tt.tooBig || (err != nil && !tt.tooBig) {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, too long %v", tt.header, got, err, tt.want, tt.tooBig)
		}
	}
}

func TestContextCancellation(t *testing.T) {
	tests := []struct {
		name  string
		reply reply
		edit  func(*Options)
	}{
		{"during Retry-After wait", reply{code: 503, header: map[string]string{"Retry-After": "20"}}, func(o *Options) { o.RetryMaxWait = time.Minute }},
		{"during a slow answer", reply{hang: true}, func(o *Options) { o.Timeout = time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.reply)
			c, _ := newTestClient(t, f.baseURL(), tt.edit)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			_, err := c.History(ctx, HistoryFilter{})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			// Generous bound: without cancellation this takes 20s or more.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("returned after %v", d)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
	}
}

func TestRateLimitWaitRespectsContext(t *testing.T) {
	f := newFake(t, jsonReply(200, file(t, "statuses.json")))
	c, _ := newTestClient(t, f.baseURL(), func(o *Options) { o.RateLimit = 0.1 }) // one token per ~10s
	if _, err := c.Statuses(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The deadline falls before the next token: fail now, not at the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.Statuses(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Errorf("err = %v (ctx %v), want an early DeadlineExceeded", err, ctx.Err())
	}
	// Cancellation ends the wait.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Statuses(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestRateLimitSpacing checks the token bucket on arrival times. The
// limiter hands out token j no sooner than j intervals after the first, and
// the first no sooner than the test's start, so request j (in arrival order)
// cannot arrive before start + j intervals. This bound holds however late
// the scheduler runs anything, so a loaded machine cannot fail it, while a
// client that skipped the limiter (on retries, or under concurrency) would.
// slack absorbs x/time/rate's float arithmetic (seen: a token 26 µs early
// after six intervals), far below the interval a skipped limiter would lose.
func TestRateLimitSpacing(t *testing.T) {
	const rps = 20.0
	perSecond := rps * rateHeadroom
	interval := time.Duration(float64(time.Second) / perSecond)
	const slack = 200 * time.Microsecond
	tests := []struct {
		name    string
		replies []reply
		calls   int
		want    int // requests the server sees
	}{
		// Retries take tokens too: 4 calls x 3 attempts.
		{"retries", []reply{jsonReply(503, nil)}, 4, 12},
		{"concurrent calls", []reply{jsonReply(200, file(t, "statuses.json"))}, 12, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.replies...)
			c, _ := newTestClient(t, f.baseURL(), func(o *Options) { o.RateLimit = rps })
			start := time.Now()
			var wg sync.WaitGroup
			for range tt.calls {
				wg.Go(func() { _, _ = c.Statuses(context.Background()) })
			}
			wg.Wait()
			reqs := f.requests()
			if len(reqs) != tt.want {
				t.Fatalf("%d requests, want %d", len(reqs), tt.want)
			}
			for j, r := range reqs {
				if at := r.at.Sub(start); at < time.Duration(j)*interval-slack {
					t.Fatalf("request %d arrived %v after the start, want >= %v", j, at, time.Duration(j)*interval)
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		url, key, wantErr string
	}{
		{"https://aff-gh.retailcrm.ru", testKey, ""},
		{"http://127.0.0.1:4000/acme/", testKey, ""},
		{"ftp://x", testKey, "want http(s)://host[/prefix]"},
		{"aff-gh.retailcrm.ru", testKey, "want http(s)://host[/prefix]"},
		{"https://aff-gh.retailcrm.ru/?apiKey=" + testKey, testKey, "no query"},
		{"https://u:" + testKey + "@aff-gh.retailcrm.ru", testKey, "no query, fragment or user info"},
		{"https://aff-gh.retailcrm.ru", "", "empty API key"},
		{"https://aff-gh.retailcrm.ru", "abc\r\nX-Evil: 1", "control characters"},
	}
	for _, tt := range tests {
		_, err := New(Options{BaseURL: tt.url, APIKey: tt.key})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("New(%q): %v", tt.url, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("New(%q) = %v, want %q", tt.url, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), testKey):
			t.Errorf("New(%q): key in error %v", tt.url, err)
		}
	}
}

// TestListQueries pins the filter names and formats of the orders list and
// the history of one order to those of the official clients
// (api-client-php's OrderFilter and OrderHistoryFilterV4Type).
func TestListQueries(t *testing.T) {
	f := newFake(t, jsonReply(200, []byte(`{"success":true,"pagination":{"limit":50,"totalCount":0,"currentPage":3,"totalPageCount":0},"orders":[],"history":[]}`)))
	c, _ := newTestClient(t, f.baseURL(), nil)
	lagos := time.FixedZone("UTC+1", 3600)
	at := time.Date(2026, 11, 23, 9, 30, 5, 999, time.UTC)
	p, err := c.OrderList(context.Background(), OrdersFilter{ExtendedStatus: []string{"approved", "complete"},
		StatusUpdatedAtFrom: at, Location: lagos, Sites: []string{"s1", "s2"}, Limit: 50, Page: 3})
	if err != nil || p.Pagination.CurrentPage != 3 || p.Orders == nil {
		t.Fatalf("OrderList = %+v, %v", p, err)
	}
	if _, err := c.OrderList(context.Background(), OrdersFilter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.History(context.Background(), HistoryFilter{OrderID: 42, StartDate: at, Location: lagos}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.History(context.Background(), HistoryFilter{StartDate: at, EndDate: at.Add(time.Hour), Location: lagos}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	want := []struct {
		path string
		q    url.Values
	}{
		{"/acme/api/v5/orders", url.Values{"filter[extendedStatus][]": {"approved", "complete"},
			"filter[statusUpdatedAtFrom]": {"2026-11-23 10:30:05"}, "filter[sites][]": {"s1", "s2"}, "limit": {"50"}, "page": {"3"}}},
		{"/acme/api/v5/orders", url.Values{"limit": {"100"}, "page": {"1"}}},
		{"/acme/api/v5/orders/history", url.Values{"filter[orderId]": {"42"}, "filter[startDate]": {"2026-11-23 10:30:05"}, "limit": {"100"}}},
		{"/acme/api/v5/orders/history", url.Values{"filter[startDate]": {"2026-11-23 10:30:05"}, "filter[endDate]": {"2026-11-23 11:30:05"}, "limit": {"100"}}},
	}
	for i, w := range want {
		checkRequest(t, reqs[i], w.path)
		if q := mustQuery(t, reqs[i].rawQuery); fmt.Sprint(q) != fmt.Sprint(w.q) {
			t.Errorf("request %d: query %v, want %v", i, q, w.q)
		}
	}
}

// TestErrorsWithoutURL: a token in the account URL's path never shows in
// a transport error nor in the debug log (resty's messages, the retry
// log); the request's URL does in net/http's own error.
func TestErrorsWithoutURL(t *testing.T) {
	const token = "p4th-t0ken-0123456789"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // connections are refused
	c, logs := newTestClient(t, "http://"+ln.Addr().String()+"/"+token, nil)
	_, err = c.History(context.Background(), HistoryFilter{SinceID: 5})
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "retailcrm: /api/v5/orders/history: ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("the error shows the URL's token: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "connection refused") || strings.Contains(l, token) {
		t.Errorf("the debug log lacks the failures or shows the token:\n%s", l)
	}
}
