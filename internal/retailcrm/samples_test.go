package retailcrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleFiles lists the mirrored published samples (testdata/samples, see
// its README) as paths relative to testdata.
func sampleFiles(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "samples", "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range paths {
		if ext := filepath.Ext(p); ext == ".json" || ext == ".html" {
			out = append(out, strings.TrimPrefix(p, "testdata"+string(filepath.Separator)))
		}
	}
	return out
}

// historyWant counts what a history sample must decode to.
type historyWant struct {
	entries, noOrder, created, items, payments, statusField int
	sources                                                 string // "api:1 user:2", sorted
	first, last                                             int64
}

// orderWant is what an order of a sample must decode to; payments and
// customFields are the sizes of the decoded maps, -1 for nil.
type orderWant struct {
	id                                        int64
	number, externalID, site, status, updated string
	payments, customFields                    int
}

// TestSamples serves every published sample with its status from an
// httptest server and reads it with the client: the envelope, the error
// classification and the decoders all run, and what comes out is checked
// against what the sample holds.
func TestSamples(t *testing.T) {
	hist := func(w historyWant) func(t *testing.T, c *Client, body []byte) {
		return func(t *testing.T, c *Client, body []byte) {
			page, err := c.History(context.Background(), HistoryFilter{})
			if err != nil {
				t.Fatal(err)
			}
			checkHistory(t, page, body, w)
		}
	}
	list := func(want ...orderWant) func(t *testing.T, c *Client, body []byte) {
		return func(t *testing.T, c *Client, body []byte) {
			page, err := c.OrderList(context.Background(), OrdersFilter{})
			if err != nil {
				t.Fatal(err)
			}
			checkOrders(t, page.Orders, body, "orders", want)
		}
	}
	one := func(want orderWant) func(t *testing.T, c *Client, body []byte) {
		return func(t *testing.T, c *Client, body []byte) {
			o, err := getOrder(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			checkOrders(t, []Order{o}, body, "order", []orderWant{want})
		}
	}
	statuses := func(n int, want map[string]Status) func(t *testing.T, c *Client, body []byte) {
		return func(t *testing.T, c *Client, _ []byte) {
			got, err := c.Statuses(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkReference(t, got, n, want)
		}
	}
	sites := func(n int, want map[string]Site) func(t *testing.T, c *Client, body []byte) {
		return func(t *testing.T, c *Client, _ []byte) {
			got, err := c.Sites(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkReference(t, got, n, want)
		}
	}
	creds := func(want Credentials) func(t *testing.T, c *Client, body []byte) {
		return func(t *testing.T, c *Client, _ []byte) {
			got, err := c.Credentials(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("credentials\n got %#v\nwant %#v", got, want)
			}
		}
	}
	// fails expects the credentials call to fail with the sentinel, or with
	// an *APIError reading exactly apiErr.
	fails := func(sentinel error, apiErr string) func(t *testing.T, c *Client, body []byte) {
		return func(t *testing.T, c *Client, _ []byte) {
			_, err := c.Credentials(context.Background())
			var ae *APIError
			switch {
			case err == nil:
				t.Fatal("no error")
			case sentinel != nil && (!errors.Is(err, sentinel) || errors.As(err, &ae)):
				t.Errorf("err = %v, want %v", err, sentinel)
			case sentinel == nil && (!errors.As(err, &ae) || err.Error() != apiErr):
				t.Errorf("err = %v\nwant *APIError %s", err, apiErr)
			}
		}
	}
	woo := func(n int) historyWant { return historyWant{entries: n, sources: fmt.Sprintf("user:%d", n)} }

	tests := []struct {
		file  string
		code  int
		ctype string
		check func(t *testing.T, c *Client, body []byte)
	}{
		// api-client-php
		{"php_orders_history.json", 200, "", hist(historyWant{entries: 100, created: 23, items: 12, payments: 18, statusField: 33,
			sources: "api:35 code:17 user:48", first: 21116, last: 21413})},
		{"php_orders_list.json", 200, "", list(orderWant{21425, "21425C", "", "shop-east", "assembling", "2026-07-26 12:49:02", 0, 6})},
		{"php_orders_get.json", 200, "", one(orderWant{20168, "24370568695677482", "24370568695677482", "shop-north", "delivering", "2026-05-31 18:20:38", 1, 3})},
		{"php_reference_statuses.json", 200, "", statuses(39, map[string]Status{
			"9":                      {Name: "11", Code: "9", Active: true, Ordering: 2972, Group: "complete"},
			"availability-confirmed": {Name: "Meadow2 wasabi", Code: "availability-confirmed", Active: true, Ordering: 32, Group: "approval"},
		})},
		{"php_reference_sites.json", 200, "", sites(2, map[string]Site{"shop-west": {Code: "shop-west", Name: "ginger", URL: "https://store97.example.org"}})},
		{"php_credentials.json", 200, "", creds(Credentials{Scopes: []string{"order_read", "customer_read", "reference_read"}, SiteAccess: AccessFull})},
		{"php_error_method_not_allowed.json", 405, "", fails(nil, "retailcrm: /api/credentials: 405 Method Not Allowed")},
		{"php_error_invalid_data.json", 405, "", fails(nil, "retailcrm: /api/credentials: 405 Invalid request")},
		{"php_error_account_html.html", 405, "text/html; charset=utf-8", fails(ErrAccountNotFound, "")},
		// api-client-python: "success" is the string "true" throughout.
		{"py_orders_history.json", 200, "", hist(historyWant{entries: 1, created: 1, statusField: 1, sources: "api:1", first: 23663, last: 23663})},
		{"py_orders.json", 200, "", list(orderWant{16814, "16814A", "16811", "10-0-0-7-8080", "new", "2025-09-05 18:55:31", -1, 0})},
		{"py_credentials.json", 200, "", creds(Credentials{SiteAccess: AccessFull})},
		{"py_reference_statuses.json", 200, "", statuses(2, map[string]Status{"rush-order": {Name: "Meadow3 xylem", Code: "rush-order", Ordering: 2972, Group: "new"}})},
		// The key says "shop-north", the site's own code "b2b-portal": the code wins.
		{"py_reference_sites.json", 200, "", sites(1, map[string]Site{"b2b-portal": {Code: "b2b-portal", Name: "Lagoon3", URL: "http://store78.example.org"}})},
		// api-client-go
		{"go_orders_history.json", 200, "", hist(historyWant{entries: 1, noOrder: 1, sources: ":1", first: 5, last: 5})},
		{"go_orders.json", 200, "", list(orderWant{5, "", "", "", "", "", -1, -1})},
		{"go_credentials.json", 200, "", creds(Credentials{})},
		{"go_reference_statuses.json", 200, "", statuses(0, nil)},
		{"go_reference_sites.json", 200, "", sites(0, nil)},
		{"go_error_account_bad_url.json", 400, "", fails(ErrAccountNotFound, "")},
		{"go_error_bad_key.json", 403, "", fails(ErrUnauthorized, "")},
		// The Go client's mock names the errors "ErrorsList", which the API does not: only errorMsg is read.
		{"go_error_history_filter.json", 400, "", fails(nil, "retailcrm: /api/credentials: 400 Errors in the input parameters")},
		{"go_error_list.json", 400, "", fails(nil, "retailcrm: /api/credentials: 400 Module not activated: The module needs a paid plan; Second reason")},
		{"go_error_map.json", 400, "", fails(nil, "retailcrm: /api/credentials: 400 Module not activated: code: code is taken; id: id is not a number")},
		{"go_error_api_key_missing.json", 403, "", fails(ErrUnauthorized, "")},
		{"go_error_access_denied.json", 403, "", fails(ErrUnauthorized, "")},
		{"go_error_account_missing.json", 200, "", fails(ErrAccountNotFound, "")},
		{"go_error_validation.json", 400, "", fails(nil, "retailcrm: /api/credentials: 400 Validation error: site: site is required")},
		{"go_error_missing_parameter.json", 400, "", fails(nil, "retailcrm: /api/credentials: 400 Parameter 'order' is missing")},
		{"go_error_html.html", 200, "text/html", fails(ErrAccountNotFound, "")},
		// woocommerce-module
		{"woo_empty_history.json", 200, "", hist(historyWant{})},
		{"woo_new_order.json", 200, "", hist(historyWant{entries: 1, created: 1, statusField: 1, sources: "user:1", first: 5, last: 5})},
		{"woo_new_order_deleted_items.json", 200, "", hist(historyWant{entries: 2, created: 1, items: 1, statusField: 1, sources: "api:1 user:1", first: 5, last: 8})},
		{"woo_product_add.json", 200, "", hist(historyWant{entries: 1, items: 1, sources: "user:1", first: 8, last: 8})},
		// Two entries share id 14, the last one out of order.
		{"woo_update.json", 200, "", hist(historyWant{entries: 6, payments: 1, statusField: 1, sources: "user:6", first: 11, last: 14})},
		{"woo_order_for_client_replace.json", 200, "", hist(historyWant{entries: 1, created: 1, statusField: 1, sources: "user:1", first: 75035, last: 75035})},
		{"woo_change_to_another_individual.json", 200, "", hist(with(woo(7), 76196, 76214))},
		{"woo_change_to_corporate.json", 200, "", hist(with(woo(13), 77234, 77270))},
		{"woo_change_to_another_corporate.json", 200, "", hist(with(woo(9), 77939, 77963))},
		{"woo_change_only_company.json", 200, "", hist(with(woo(1), 77966, 77966))},
		{"woo_change_only_contact.json", 200, "", hist(with(woo(6), 77969, 77984))},
		{"woo_change_from_corporate_to_individual.json", 200, "", hist(with(woo(8), 77987, 78008))},
		{"woo_order_get.json", 200, "", one(orderWant{17606, "17606C", "257", "shop-south", "new", "2025-11-02 18:16:17", 0, 3})},
		// prestashop-module
		{"presta_history_exist_order.json", 200, "", hist(historyWant{entries: 1, sources: "api:1", first: 59258, last: 59258})},
		{"presta_history_new_order.json", 200, "", hist(historyWant{entries: 1, created: 1, statusField: 1, sources: "user:1", first: 5, last: 5})},
		{"presta_history_new_order_corporate.json", 200, "", hist(historyWant{entries: 1, created: 1, statusField: 1, sources: "user:1", first: 5, last: 5})},
		{"presta_history_payment_status.json", 200, "", hist(historyWant{entries: 3, payments: 2, sources: "user:3", first: 1964, last: 1970})},
		{"presta_history_address_updated.json", 200, "", hist(historyWant{entries: 3, sources: "api:3", first: 59258, last: 59264})},
		{"presta_history_name_phone_updated.json", 200, "", hist(historyWant{entries: 2, sources: "api:2", first: 59258, last: 59261})},
		// Creation entries without any order, as the module's mock sends them.
		{"presta_history_last_since_id.json", 200, "", hist(historyWant{entries: 3, noOrder: 3, created: 3, sources: "api:3", first: 5, last: 11})},
		{"presta_order_get.json", 200, "", one(orderWant{5, "5C", "", "shop-central", "new", "2023-06-01 03:11:07", 1, 0})},
	}
	covered := make(map[string]bool)
	for _, tt := range tests {
		covered[filepath.Join("samples", tt.file)] = true
		t.Run(tt.file, func(t *testing.T) {
			body := file(t, filepath.Join("samples", tt.file))
			f := newFake(t, reply{code: tt.code, ctype: tt.ctype, body: body})
			c, _ := newTestClient(t, f.baseURL(), nil)
			tt.check(t, c, body)
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
	for _, name := range sampleFiles(t) {
		if !covered[name] {
			t.Errorf("%s has no case in TestSamples", name)
		}
	}
}

func with(w historyWant, first, last int64) historyWant {
	w.first, w.last = first, last
	return w
}

// checkHistory compares a decoded page with the sample's counts, and every
// entry with the sample's own bytes: id, order and values as sent.
func checkHistory(t *testing.T, page HistoryPage, body []byte, w historyWant) {
	t.Helper()
	var got historyWant
	got.entries = len(page.History)
	sources := map[string]int{}
	for _, e := range page.History {
		switch {
		case e.Order == nil:
			got.noOrder++
		case e.Order.NotObject || e.Order.ID <= 0:
			t.Errorf("entry %d: odd order %+v", e.ID, e.Order)
		}
		if e.ID <= 0 {
			t.Errorf("entry without id: %+v", e)
		}
		if e.Created {
			got.created++
		}
		if e.Item != nil {
			got.items++
		}
		if e.Payment != nil {
			got.payments++
		}
		if e.Field == "status" {
			got.statusField++
		}
		sources[e.Source]++
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(sources)) {
		parts = append(parts, fmt.Sprintf("%s:%d", s, sources[s]))
	}
	got.sources = strings.Join(parts, " ")
	if n := len(page.History); n > 0 {
		got.first, got.last = page.History[0].ID, page.History[n-1].ID
	}
	if got != w {
		t.Errorf("decoded\n got %+v\nwant %+v", got, w)
	}
	var orig struct {
		History []struct {
			ID                                json.RawMessage
			Order, OldValue, NewValue         json.RawMessage
			Item, Payment, Ancestor, Combined json.RawMessage
		} `json:"history"`
	}
	if err := json.Unmarshal(body, &orig); err != nil {
		t.Fatal(err)
	}
	for i, e := range page.History {
		o := orig.History[i]
		if id, _ := parseID(o.ID); e.ID != id {
			t.Errorf("entry %d: id %d, sent %s", i, e.ID, o.ID)
		}
		if e.Order != nil && !bytes.Equal(e.Order.Raw, o.Order) {
			t.Errorf("entry %d: order raw differs", e.ID)
		}
		if !bytes.Equal(e.OldValue.Raw, o.OldValue) || !bytes.Equal(e.NewValue.Raw, o.NewValue) {
			t.Errorf("entry %d: values %s -> %s, sent %s -> %s", e.ID, e.OldValue.Raw, e.NewValue.Raw, o.OldValue, o.NewValue)
		}
		if e.Item != nil && !bytes.Equal(e.Item, o.Item) || e.Payment != nil && !bytes.Equal(e.Payment, o.Payment) {
			t.Errorf("entry %d: item or payment differs from what was sent", e.ID)
		}
	}
}

// checkOrders compares decoded orders with the sample's, raw bytes included.
func checkOrders(t *testing.T, orders []Order, body []byte, key string, want []orderWant) {
	t.Helper()
	if len(orders) != len(want) {
		t.Fatalf("%d orders, want %d", len(orders), len(want))
	}
	var raw []json.RawMessage
	var r map[string]json.RawMessage
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if key == "order" {
		raw = []json.RawMessage{r[key]}
	} else if err := json.Unmarshal(r[key], &raw); err != nil {
		t.Fatal(err)
	}
	size := func(n int, isNil bool) int {
		if isNil {
			return -1
		}
		return n
	}
	for i, o := range orders {
		got := orderWant{o.ID, o.Number, o.ExternalID, o.Site, o.Status, o.StatusUpdatedAt,
			size(len(o.Payments), o.Payments == nil), size(len(o.CustomFields), o.CustomFields == nil)}
		if got != want[i] {
			t.Errorf("order %d\n got %+v\nwant %+v", i, got, want[i])
		}
		if !bytes.Equal(o.Raw, raw[i]) {
			t.Errorf("order %d: raw differs", o.ID)
		}
	}
}

func checkReference[T comparable](t *testing.T, got map[string]T, n int, want map[string]T) {
	t.Helper()
	if got == nil || len(got) != n {
		t.Errorf("%d items (nil %v), want %d: %v", len(got), got == nil, n, got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %+v, want %+v", k, got[k], v)
		}
	}
}

// getOrder reads GET /api/v5/orders/{id}, an endpoint the poller does not
// use, whose samples still show full orders in their published shapes.
func getOrder(ctx context.Context, c *Client) (Order, error) {
	body, err := c.get(ctx, "orders", pathOrders+"/7", nil)
	if err != nil {
		return Order{}, err
	}
	var r struct {
		Order json.RawMessage `json:"order"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Order{}, err
	}
	var o Order
	return o, o.UnmarshalJSON(r.Order)
}
