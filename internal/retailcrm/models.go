package retailcrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The models below decode only what the poller reads, and decode it
// leniently: RetailCRM is a PHP application whose JSON types drift (numbers
// sent as strings, empty objects sent as [], custom fields of any shape),
// and the published samples of its own clients and modules show every one
// of these shapes. One odd entry or order must not hide the others, so a
// history entry never fails to decode: what cannot be read is left zero
// and detection reports it. Only full orders (GET /api/v5/orders) without
// a usable id are left out, because nothing can be done with them.

// HistoryPage is one page of GET /api/v5/orders/history.
type HistoryPage struct {
	GeneratedAt string         `json:"generatedAt"`
	History     []HistoryEntry `json:"history"`
	Pagination  Pagination     `json:"pagination"`
}

// Pagination as RetailCRM returns it.
type Pagination struct {
	Limit          int `json:"limit"`
	TotalCount     int `json:"totalCount"`
	CurrentPage    int `json:"currentPage"`
	TotalPageCount int `json:"totalPageCount"`
}

// UnmarshalJSON decodes pagination leniently (numbers or numeric strings).
func (p *Pagination) UnmarshalJSON(b []byte) error {
	var l struct {
		Limit          lenientInt `json:"limit"`
		TotalCount     lenientInt `json:"totalCount"`
		CurrentPage    lenientInt `json:"currentPage"`
		TotalPageCount lenientInt `json:"totalPageCount"`
	}
	if err := unmarshalObject(b, &l); err != nil {
		return nil // a pagination of another shape only loses the counts
	}
	*p = Pagination{int(l.Limit), int(l.TotalCount), int(l.CurrentPage), int(l.TotalPageCount)}
	return nil
}

// HistoryEntry is one change of one order field.
type HistoryEntry struct {
	// ID is the entry's own history id: 0 when it is missing or not a
	// positive integer, or when the entry is not a JSON object at all. A
	// reader cannot tell where such an entry belongs, so it must not move a
	// cursor past it.
	ID        int64       `json:"id"`
	CreatedAt string      `json:"createdAt"`
	Created   bool        `json:"created"`
	Deleted   bool        `json:"deleted"`
	Source    string      `json:"source"` // user, api, code, ...
	Field     string      `json:"field"`
	OldValue  Value       `json:"oldValue"`
	NewValue  Value       `json:"newValue"`
	User      *User       `json:"user,omitempty"`
	APIKey    *APIKeyInfo `json:"apiKey,omitempty"`
	// Order is the order the entry belongs to; nil when "order" is absent
	// or null. Its other odd shapes are kept and flagged in EntryOrder.
	Order *EntryOrder `json:"order,omitempty"`
	// Item and Payment are the order item or payment the entry is about
	// (fields such as order_product.status or payments.status, and their
	// creations), as sent; nil when absent, null or empty ([] or {}).
	Item    json.RawMessage `json:"item,omitempty"`
	Payment json.RawMessage `json:"payment,omitempty"`
	// Ancestor and CombinedTo come with order merges: the order an entry's
	// change came from, and the order this order was merged into.
	Ancestor   *EntryOrder `json:"ancestor,omitempty"`
	CombinedTo *EntryOrder `json:"combinedTo,omitempty"`
}

// UnmarshalJSON never fails: an entry that is not an object, or whose id
// cannot be read, decodes with ID 0; every other field is lenient.
func (e *HistoryEntry) UnmarshalJSON(b []byte) error {
	var l struct {
		ID         json.RawMessage `json:"id"`
		CreatedAt  lenientString   `json:"createdAt"`
		Created    lenientBool     `json:"created"`
		Deleted    lenientBool     `json:"deleted"`
		Source     lenientString   `json:"source"`
		Field      lenientString   `json:"field"`
		OldValue   Value           `json:"oldValue"`
		NewValue   Value           `json:"newValue"`
		User       json.RawMessage `json:"user"`
		APIKey     json.RawMessage `json:"apiKey"`
		Order      json.RawMessage `json:"order"`
		Item       json.RawMessage `json:"item"`
		Payment    json.RawMessage `json:"payment"`
		Ancestor   json.RawMessage `json:"ancestor"`
		CombinedTo json.RawMessage `json:"combinedTo"`
	}
	*e = HistoryEntry{}
	if unmarshalObject(b, &l) != nil {
		return nil
	}
	id, _ := parseID(l.ID)
	*e = HistoryEntry{
		ID: id, CreatedAt: string(l.CreatedAt), Created: bool(l.Created), Deleted: bool(l.Deleted),
		Source: string(l.Source), Field: string(l.Field), OldValue: l.OldValue, NewValue: l.NewValue,
		Order: decodeEntryOrder(l.Order), Item: nonEmpty(l.Item), Payment: nonEmpty(l.Payment),
		Ancestor: decodeEntryOrder(l.Ancestor), CombinedTo: decodeEntryOrder(l.CombinedTo),
	}
	if isObject(l.User) {
		var u struct {
			ID lenientInt `json:"id"`
		}
		if unmarshalObject(l.User, &u) == nil {
			e.User = &User{ID: int64(u.ID)}
		}
	}
	if isObject(l.APIKey) {
		var k struct {
			Current lenientBool `json:"current"`
		}
		if unmarshalObject(l.APIKey, &k) == nil {
			e.APIKey = &APIKeyInfo{Current: bool(k.Current)}
		}
	}
	return nil
}

// Value is a history oldValue/newValue: a scalar, or an object such as a
// status {"code": "approved"}. Raw keeps the JSON as sent (nil when absent).
type Value struct {
	Raw json.RawMessage
}

// UnmarshalJSON keeps any JSON value as it is.
func (v *Value) UnmarshalJSON(b []byte) error {
	v.Raw = bytes.Clone(b)
	return nil
}

// MarshalJSON writes Raw back, or null when the value was absent.
func (v Value) MarshalJSON() ([]byte, error) {
	if len(v.Raw) == 0 {
		return []byte("null"), nil
	}
	return v.Raw, nil
}

// Code returns the "code" of an object value, or the string itself for a
// string value, or "" for anything else (null, numbers, missing).
func (v Value) Code() string {
	raw := bytes.TrimSpace(v.Raw)
	switch {
	case len(raw) == 0:
		return ""
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case raw[0] == '{':
		var o struct {
			Code lenientString `json:"code"`
		}
		if json.Unmarshal(raw, &o) == nil {
			return string(o.Code)
		}
	}
	return ""
}

// User made the change.
type User struct {
	ID int64 `json:"id"`
}

// APIKeyInfo tells whether the change came through the API key in use.
type APIKeyInfo struct {
	Current bool `json:"current"`
}

// EntryOrder is an order as a history entry carries it: full on a
// creation entry, minimal {id, externalId, managerId, site, status}
// otherwise; also the order of "ancestor" and "combinedTo". Raw keeps the
// JSON as sent.
type EntryOrder struct {
	ID              int64  `json:"id"` // 0 when missing or not a positive integer
	ExternalID      string `json:"externalId,omitempty"`
	Number          string `json:"number,omitempty"`
	Site            string `json:"site,omitempty"`
	Status          string `json:"status,omitempty"`
	StatusUpdatedAt string `json:"statusUpdatedAt,omitempty"` // "Y-m-d H:i:s", account time zone
	// NotObject: the value was not a JSON object (PHP's [] for an empty
	// order, a list or a scalar); only Raw is set.
	NotObject bool            `json:"-"`
	Raw       json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the light fields and keeps the exact bytes in Raw;
// it never fails (see EntryOrder.NotObject and EntryOrder.ID).
func (o *EntryOrder) UnmarshalJSON(b []byte) error {
	*o = EntryOrder{}
	if d := decodeEntryOrder(b); d != nil {
		*o = *d
	}
	return nil
}

// MarshalJSON writes the order exactly as the API sent it.
func (o EntryOrder) MarshalJSON() ([]byte, error) { return rawOrNull(o.Raw), nil }

// decodeEntryOrder returns nil for an absent or null order.
func decodeEntryOrder(raw json.RawMessage) *EntryOrder {
	if isNull(raw) {
		return nil
	}
	o := &EntryOrder{Raw: bytes.Clone(raw)}
	f, err := decodeOrderFields(raw)
	if err != nil {
		o.NotObject = true
		return o
	}
	o.ID, o.ExternalID, o.Number, o.Site, o.Status, o.StatusUpdatedAt = f.id, f.externalID, f.number, f.site, f.status, f.statusUpdatedAt
	return o
}

// Order is a full order from GET /api/v5/orders. Only the fields the poller
// reads are decoded; Raw is the order exactly as the API returned it.
type Order struct {
	ID              int64  `json:"id"`
	ExternalID      string `json:"externalId,omitempty"`
	Number          string `json:"number,omitempty"`
	Site            string `json:"site,omitempty"`
	Status          string `json:"status,omitempty"`
	StatusUpdatedAt string `json:"statusUpdatedAt,omitempty"` // "Y-m-d H:i:s", account time zone
	// Payments is "payments" keyed by payment id. RetailCRM sends an object
	// keyed by id; modules and older answers send a list of payments (keyed
	// here by their id, or by position when they have none); [] and {} mean
	// none (an empty map). Nil when absent or of another shape.
	Payments map[string]Payment `json:"payments,omitempty"`
	// CustomFields is "customFields": an object keyed by field code, or []
	// (decoded as an empty map) when the order has none. Values stay raw
	// because each field has its own type (strings, numbers, booleans, lists).
	CustomFields map[string]json.RawMessage `json:"customFields,omitempty"`
	Raw          json.RawMessage            `json:"-"`
}

// Payment is one payment of an order.
type Payment struct {
	ID     int64   `json:"id"`
	Status string  `json:"status"`
	Type   string  `json:"type"`
	Amount float64 `json:"amount"`
}

// UnmarshalJSON decodes the light fields and keeps the exact bytes in Raw;
// an order without a usable id is an error.
func (o *Order) UnmarshalJSON(b []byte) error {
	l, err := decodeOrderFields(b)
	if err != nil {
		return err
	}
	if l.idErr != nil {
		return fmt.Errorf("order: %w", l.idErr)
	}
	*o = Order{ID: l.id, ExternalID: l.externalID, Number: l.number, Site: l.site, Status: l.status,
		StatusUpdatedAt: l.statusUpdatedAt, Payments: decodePayments(l.payments),
		CustomFields: objectOrEmptyList(l.customFields), Raw: bytes.Clone(b)}
	return nil
}

// MarshalJSON writes the order exactly as the API sent it.
func (o Order) MarshalJSON() ([]byte, error) { return rawOrNull(o.Raw), nil }

// orderFields are the fields shared by Order and EntryOrder.
type orderFields struct {
	id                                                int64
	idErr                                             error // why id is 0
	externalID, number, site, status, statusUpdatedAt string
	payments, customFields                            json.RawMessage
}

// decodeOrderFields fails only when b is not a JSON object.
func decodeOrderFields(b []byte) (orderFields, error) {
	var l struct {
		ID              json.RawMessage `json:"id"`
		ExternalID      lenientString   `json:"externalId"`
		Number          lenientString   `json:"number"`
		Site            lenientString   `json:"site"`
		Status          Value           `json:"status"` // a code, or {"code": ...} in some places
		StatusUpdatedAt lenientString   `json:"statusUpdatedAt"`
		Payments        json.RawMessage `json:"payments"`
		CustomFields    json.RawMessage `json:"customFields"`
	}
	if err := unmarshalObject(b, &l); err != nil {
		return orderFields{}, fmt.Errorf("order: %w", err)
	}
	id, idErr := parseID(l.ID)
	return orderFields{id: id, idErr: idErr, externalID: string(l.ExternalID), number: string(l.Number),
		site: string(l.Site), status: l.Status.Code(), statusUpdatedAt: string(l.StatusUpdatedAt),
		payments: l.Payments, customFields: l.CustomFields}, nil
}

// decodePayments takes the object and list forms of "payments" (see
// Order.Payments).
func decodePayments(raw json.RawMessage) map[string]Payment {
	objs := objectOrEmptyList(raw)
	if objs == nil {
		var list []json.RawMessage
		if !isArray(raw) || json.Unmarshal(raw, &list) != nil {
			return nil
		}
		objs = make(map[string]json.RawMessage, len(list))
		for i, v := range list {
			var p struct {
				ID json.RawMessage `json:"id"`
			}
			key := strconv.Itoa(i)
			if unmarshalObject(v, &p) == nil {
				if id, err := parseID(p.ID); err == nil {
					key = strconv.FormatInt(id, 10)
				}
			}
			objs[key] = v
		}
	}
	out := make(map[string]Payment, len(objs))
	for k, v := range objs {
		var l struct {
			ID     lenientInt    `json:"id"`
			Status lenientString `json:"status"`
			Type   lenientString `json:"type"`
			Amount lenientFloat  `json:"amount"`
		}
		if unmarshalObject(v, &l) != nil {
			continue
		}
		out[k] = Payment{ID: int64(l.ID), Status: string(l.Status), Type: string(l.Type), Amount: float64(l.Amount)}
	}
	return out
}

// objectOrEmptyList decodes a JSON object into a map, [] (PHP's empty
// array) into an empty map, and anything else into nil.
func objectOrEmptyList(raw json.RawMessage) map[string]json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) == nil {
			return m
		}
	case '[':
		var l []json.RawMessage
		if json.Unmarshal(raw, &l) == nil && len(l) == 0 {
			return map[string]json.RawMessage{}
		}
	}
	return nil
}

// Status is a reference status.
type Status struct {
	Name     string `json:"name"`
	Code     string `json:"code"`
	Active   bool   `json:"active"`
	Ordering int    `json:"ordering"`
	Group    string `json:"group"`
}

// UnmarshalJSON decodes a status leniently.
func (s *Status) UnmarshalJSON(b []byte) error {
	var l struct {
		Name     lenientString `json:"name"`
		Code     lenientString `json:"code"`
		Active   lenientBool   `json:"active"`
		Ordering lenientInt    `json:"ordering"`
		Group    lenientString `json:"group"`
	}
	if err := unmarshalObject(b, &l); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	*s = Status{Name: string(l.Name), Code: string(l.Code), Active: bool(l.Active), Ordering: int(l.Ordering), Group: string(l.Group)}
	return nil
}

func (s *Status) codeOr(key string) string {
	if s.Code == "" {
		s.Code = key
	}
	return s.Code
}

// Site is a reference site (a shop of the account).
type Site struct {
	Code string `json:"code"`
	Name string `json:"name"`
	URL  string `json:"url"`
}

// UnmarshalJSON decodes a site leniently.
func (s *Site) UnmarshalJSON(b []byte) error {
	var l struct {
		Code lenientString `json:"code"`
		Name lenientString `json:"name"`
		URL  lenientString `json:"url"`
	}
	if err := unmarshalObject(b, &l); err != nil {
		return fmt.Errorf("site: %w", err)
	}
	*s = Site{Code: string(l.Code), Name: string(l.Name), URL: string(l.URL)}
	return nil
}

func (s *Site) codeOr(key string) string {
	if s.Code == "" {
		s.Code = key
	}
	return s.Code
}

// AccessFull is the Credentials.SiteAccess of a key that sees every site
// of the account; an "access_selective" key sees the sites listed in
// sitesAvailable.
const AccessFull = "access_full"

// Credentials is GET /api/credentials.
type Credentials struct {
	Scopes     []string `json:"scopes"`
	SiteAccess string   `json:"siteAccess"` // AccessFull, "access_selective", or "" when not sent
	// SitesAvailable are the sites the key sees, when SitesListed. Some
	// answers carry no sitesAvailable at all (api-client-php's sample has
	// only scopes, credentials and siteAccess).
	SitesAvailable []string `json:"sitesAvailable"`
	SitesListed    bool     `json:"-"`
}

// parseID accepts a positive integer as a JSON number or a numeric string.
func parseID(raw json.RawMessage) (int64, error) {
	s := strings.TrimSpace(string(raw))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("id is missing or not a positive integer: %.40q", raw)
	}
	return id, nil
}

func rawOrNull(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return []byte("null")
	}
	return raw
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// nonEmpty returns a copy of raw, or nil when it is absent, null, [] or {}.
// raw is valid JSON, so a bracket pair with only spaces inside is empty.
func nonEmpty(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) || (raw[0] == '[' || raw[0] == '{') && len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0 {
		return nil
	}
	return bytes.Clone(raw)
}

func isArray(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '['
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// unmarshalObject decodes b into v only when b is a JSON object, so that a
// light struct never silently accepts null, a list or a scalar.
func unmarshalObject(b []byte, v any) error {
	if !isObject(b) {
		return fmt.Errorf("not a JSON object: %.40q", b)
	}
	return json.Unmarshal(b, v)
}
