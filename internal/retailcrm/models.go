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
// sent as strings, empty objects sent as [], custom fields of any shape), and
// one odd order must not hide the others. Only ids are strict, because the
// poller cannot act on an entry or order it cannot identify.

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
	ID        int64       `json:"id"`
	CreatedAt string      `json:"createdAt"`
	Created   bool        `json:"created"`
	Deleted   bool        `json:"deleted"`
	Source    string      `json:"source"`
	Field     string      `json:"field"`
	OldValue  Value       `json:"oldValue"`
	NewValue  Value       `json:"newValue"`
	User      *User       `json:"user,omitempty"`
	APIKey    *APIKeyInfo `json:"apiKey,omitempty"`
	Order     *EntryOrder `json:"order,omitempty"`
}

// UnmarshalJSON requires a numeric id and an order with a numeric id (when
// present) and decodes everything else leniently.
func (e *HistoryEntry) UnmarshalJSON(b []byte) error {
	var l struct {
		ID        json.RawMessage `json:"id"`
		CreatedAt lenientString   `json:"createdAt"`
		Created   lenientBool     `json:"created"`
		Deleted   lenientBool     `json:"deleted"`
		Source    lenientString   `json:"source"`
		Field     lenientString   `json:"field"`
		OldValue  Value           `json:"oldValue"`
		NewValue  Value           `json:"newValue"`
		User      json.RawMessage `json:"user"`
		APIKey    json.RawMessage `json:"apiKey"`
		Order     json.RawMessage `json:"order"`
	}
	if err := unmarshalObject(b, &l); err != nil {
		return fmt.Errorf("history entry: %w", err)
	}
	id, err := parseID(l.ID)
	if err != nil {
		return fmt.Errorf("history entry: %w", err)
	}
	*e = HistoryEntry{
		ID: id, CreatedAt: string(l.CreatedAt), Created: bool(l.Created), Deleted: bool(l.Deleted),
		Source: string(l.Source), Field: string(l.Field), OldValue: l.OldValue, NewValue: l.NewValue,
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
	if !isNull(l.Order) {
		var o EntryOrder
		if err := o.UnmarshalJSON(l.Order); err != nil {
			return fmt.Errorf("history entry %d: %w", id, err)
		}
		e.Order = &o
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

// EntryOrder is the order attached to a history entry: full on a creation
// entry, minimal {id, externalId, managerId, site, status} otherwise.
// Raw keeps the JSON as sent.
type EntryOrder struct {
	ID         int64           `json:"id"`
	ExternalID string          `json:"externalId,omitempty"`
	Number     string          `json:"number,omitempty"`
	Site       string          `json:"site,omitempty"`
	Status     string          `json:"status,omitempty"`
	Raw        json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the light fields and keeps the exact bytes in Raw.
func (o *EntryOrder) UnmarshalJSON(b []byte) error {
	l, err := decodeOrderFields(b)
	if err != nil {
		return err
	}
	*o = EntryOrder{ID: l.id, ExternalID: l.externalID, Number: l.number, Site: l.site, Status: l.status, Raw: bytes.Clone(b)}
	return nil
}

// MarshalJSON writes the order exactly as the API sent it.
func (o EntryOrder) MarshalJSON() ([]byte, error) { return rawOrNull(o.Raw), nil }

// Order is a full order from GET /api/v5/orders. Only the fields the poller
// reads are decoded; Raw is the order exactly as the API returned it.
type Order struct {
	ID         int64  `json:"id"`
	ExternalID string `json:"externalId,omitempty"`
	Number     string `json:"number,omitempty"`
	Site       string `json:"site,omitempty"`
	Status     string `json:"status,omitempty"`
	// Payments is the "payments" object keyed by payment id (RetailCRM sends
	// an object, or [] when there are none); nil when absent or of another shape.
	Payments map[string]Payment `json:"payments,omitempty"`
	// CustomFields is "customFields": an object keyed by field code, or []
	// (decoded as an empty map) when the order has none. Values stay raw
	// because each field has its own type.
	CustomFields map[string]json.RawMessage `json:"customFields,omitempty"`
	Raw          json.RawMessage            `json:"-"`
}

// Payment is one entry of an order's payments object.
type Payment struct {
	ID     int64   `json:"id"`
	Status string  `json:"status"`
	Type   string  `json:"type"`
	Amount float64 `json:"amount"`
}

// UnmarshalJSON decodes the light fields and keeps the exact bytes in Raw.
func (o *Order) UnmarshalJSON(b []byte) error {
	l, err := decodeOrderFields(b)
	if err != nil {
		return err
	}
	*o = Order{ID: l.id, ExternalID: l.externalID, Number: l.number, Site: l.site, Status: l.status,
		Payments: decodePayments(l.payments), CustomFields: objectOrEmptyList(l.customFields), Raw: bytes.Clone(b)}
	return nil
}

// MarshalJSON writes the order exactly as the API sent it.
func (o Order) MarshalJSON() ([]byte, error) { return rawOrNull(o.Raw), nil }

// orderFields are the fields shared by Order and EntryOrder.
type orderFields struct {
	id                               int64
	externalID, number, site, status string
	payments, customFields           json.RawMessage
}

func decodeOrderFields(b []byte) (orderFields, error) {
	var l struct {
		ID           json.RawMessage `json:"id"`
		ExternalID   lenientString   `json:"externalId"`
		Number       lenientString   `json:"number"`
		Site         lenientString   `json:"site"`
		Status       Value           `json:"status"` // a code, or {"code": ...} in some places
		Payments     json.RawMessage `json:"payments"`
		CustomFields json.RawMessage `json:"customFields"`
	}
	if err := unmarshalObject(b, &l); err != nil {
		return orderFields{}, fmt.Errorf("order: %w", err)
	}
	id, err := parseID(l.ID)
	if err != nil {
		return orderFields{}, fmt.Errorf("order: %w", err)
	}
	return orderFields{id: id, externalID: string(l.ExternalID), number: string(l.Number),
		site: string(l.Site), status: l.Status.Code(), payments: l.Payments, customFields: l.CustomFields}, nil
}

func decodePayments(raw json.RawMessage) map[string]Payment {
	objs := objectOrEmptyList(raw)
	if objs == nil {
		return nil
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

// Credentials is GET /api/credentials.
type Credentials struct {
	Scopes         []string `json:"scopes"`
	SiteAccess     string   `json:"siteAccess"` // access_full | access_selective
	SitesAvailable []string `json:"sitesAvailable"`
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
