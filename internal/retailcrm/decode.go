package retailcrm

import (
	"encoding/json"
	"fmt"
)

// The decoders take a body that classify accepted (a JSON object that is
// not an error answer) and return its payload.

// decodeHistory decodes GET /api/v5/orders/history. An entry without a
// usable id fails the page: the cursor cannot move past what it cannot name.
func decodeHistory(body []byte) (HistoryPage, error) {
	var r struct {
		GeneratedAt lenientString  `json:"generatedAt"`
		History     []HistoryEntry `json:"history"`
		Pagination  Pagination     `json:"pagination"`
	}
	if err := unmarshalObject(body, &r); err != nil {
		return HistoryPage{}, err
	}
	return HistoryPage{GeneratedAt: string(r.GeneratedAt), History: r.History, Pagination: r.Pagination}, nil
}

// decodeOrders decodes GET /api/v5/orders. An order without a usable id is
// left out and reported in skipped; the others are returned in API order.
func decodeOrders(body []byte) (orders []Order, skipped []error, err error) {
	var r struct {
		Orders []json.RawMessage `json:"orders"`
	}
	if err := unmarshalObject(body, &r); err != nil {
		return nil, nil, err
	}
	orders = make([]Order, 0, len(r.Orders))
	for i, raw := range r.Orders {
		var o Order
		if err := o.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, fmt.Errorf("orders[%d]: %w", i, err))
			continue
		}
		orders = append(orders, o)
	}
	return orders, skipped, nil
}

// decodeStatuses decodes GET /api/v5/reference/statuses: an object keyed
// by code ([] when empty). A status that is not an object is left out.
func decodeStatuses(body []byte) (map[string]Status, error) {
	var r struct {
		Statuses json.RawMessage `json:"statuses"`
	}
	if err := unmarshalObject(body, &r); err != nil {
		return nil, err
	}
	raw := objectOrEmptyList(r.Statuses)
	if raw == nil {
		return nil, fmt.Errorf("statuses: not an object: %.40q", r.Statuses)
	}
	out := make(map[string]Status, len(raw))
	for code, v := range raw {
		var s Status
		if s.UnmarshalJSON(v) != nil {
			continue
		}
		if s.Code == "" {
			s.Code = code
		}
		out[code] = s
	}
	return out, nil
}

// decodeCredentials decodes GET /api/credentials.
func decodeCredentials(body []byte) (Credentials, error) {
	var r struct {
		Scopes         []lenientString `json:"scopes"`
		SiteAccess     lenientString   `json:"siteAccess"`
		SitesAvailable json.RawMessage `json:"sitesAvailable"`
	}
	if err := unmarshalObject(body, &r); err != nil {
		return Credentials{}, err
	}
	c := Credentials{SiteAccess: string(r.SiteAccess)}
	for _, s := range r.Scopes {
		c.Scopes = append(c.Scopes, string(s))
	}
	sites, err := stringList(r.SitesAvailable)
	if err != nil {
		return Credentials{}, fmt.Errorf("sitesAvailable: %w", err)
	}
	c.SitesAvailable = sites
	return c, nil
}

// stringList takes a list of strings, or an object of them (PHP arrays
// with gaps in their keys encode as objects), or null.
func stringList(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err == nil {
		return l, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not a list of strings: %.40q", raw)
	}
	for _, k := range sortedKeys(m) {
		l = append(l, m[k])
	}
	return l, nil
}
