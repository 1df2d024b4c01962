package retailcrm

import (
	"encoding/json"
	"fmt"
)

// The decoders take a body that classify accepted (a JSON object that is
// not an error answer) and return its payload.

// decodeHistory decodes GET /api/v5/orders/history. Only a body whose
// "history" is not a list fails; each entry decodes whatever its shape
// (see HistoryEntry), so one odd entry never fails its page.
func decodeHistory(body []byte) (HistoryPage, error) {
	var r struct {
		GeneratedAt lenientString   `json:"generatedAt"`
		History     *[]HistoryEntry `json:"history"` // nil: absent or null
		Pagination  Pagination      `json:"pagination"`
	}
	// Entries decode in place (HistoryEntry.UnmarshalJSON never fails, for
	// any JSON value), so only a history that is not a list can fail here.
	if err := unmarshalObject(body, &r); err != nil || r.History == nil {
		var probe struct {
			History json.RawMessage `json:"history"`
		}
		if json.Unmarshal(body, &probe) != nil {
			return HistoryPage{}, err
		}
		return HistoryPage{}, fmt.Errorf("history: not a list: %.40q", probe.History)
	}
	return HistoryPage{GeneratedAt: string(r.GeneratedAt), History: *r.History, Pagination: r.Pagination}, nil
}

// OrdersPage is one page of GET /api/v5/orders.
type OrdersPage struct {
	Orders     []Order
	Pagination Pagination
}

// decodeOrders decodes GET /api/v5/orders. An order without a usable id is
// left out and reported in skipped; the others are returned in API order.
// "orders" must be a list (absent or null: none).
func decodeOrders(body []byte) (page OrdersPage, skipped []error, err error) {
	var r struct {
		Orders     []json.RawMessage `json:"orders"`
		Pagination Pagination        `json:"pagination"`
	}
	if err := unmarshalObject(body, &r); err != nil {
		return OrdersPage{}, nil, err
	}
	page = OrdersPage{Orders: make([]Order, 0, len(r.Orders)), Pagination: r.Pagination}
	for i, raw := range r.Orders {
		var o Order
		if err := o.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, fmt.Errorf("orders[%d]: %w", i, err))
			continue
		}
		page.Orders = append(page.Orders, o)
	}
	return page, skipped, nil
}

// refEntry is a reference item (*Status, *Site) that takes its code from
// its key in the reference object when it carries none.
type refEntry[T any] interface {
	*T
	json.Unmarshaler
	codeOr(key string) string
}

// decodeReference decodes a reference answer (GET /api/v5/reference/...):
// under name, an object keyed by code, [] when empty. Absent or null means
// the account has none. An item that is not an object is left out; items
// are keyed by their own code, which may differ from their key.
func decodeReference[T any, P refEntry[T]](body []byte, name string) (map[string]T, error) {
	var r map[string]json.RawMessage
	if err := unmarshalObject(body, &r); err != nil {
		return nil, err
	}
	if isNull(r[name]) {
		return map[string]T{}, nil
	}
	raw := objectOrEmptyList(r[name])
	if raw == nil {
		return nil, fmt.Errorf("%s: not an object: %.40q", name, r[name])
	}
	out := make(map[string]T, len(raw))
	for key, v := range raw {
		var item T
		if P(&item).UnmarshalJSON(v) != nil {
			continue
		}
		out[P(&item).codeOr(key)] = item
	}
	return out, nil
}

// decodeCredentials decodes GET /api/credentials. A sitesAvailable that is
// absent or not a list leaves SitesListed false.
func decodeCredentials(body []byte) (Credentials, error) {
	var r struct {
		Scopes         lenientStrings `json:"scopes"`
		SiteAccess     lenientString  `json:"siteAccess"`
		SitesAvailable lenientStrings `json:"sitesAvailable"`
	}
	if err := unmarshalObject(body, &r); err != nil {
		return Credentials{}, err
	}
	return Credentials{Scopes: r.Scopes.list, SiteAccess: string(r.SiteAccess),
		SitesAvailable: r.SitesAvailable.list, SitesListed: r.SitesAvailable.ok}, nil
}
