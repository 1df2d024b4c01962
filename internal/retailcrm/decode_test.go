package retailcrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestValueCode(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{`{"code":"approved"}`, "approved"},
		{` {"code": "new", "name": "New"} `, "new"},
		{`{"code":17}`, "17"},
		{`{"name":"no code"}`, ""},
		{`"assembling"`, "assembling"},
		{`"esc\u0061ped"`, "escaped"},
		{`null`, ""},
		{`42`, ""},
		{`true`, ""},
		{`["approved"]`, ""},
		{``, ""},
		{`{"code":`, ""},
	}
	for _, tt := range tests {
		if got := (Value{Raw: json.RawMessage(tt.raw)}).Code(); got != tt.want {
			t.Errorf("Value(%s).Code() = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	in := `{"oldValue":{"code":"new"},"newValue":[1,"x"]}`
	var v struct{ OldValue, NewValue, Missing Value }
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"OldValue":{"code":"new"},"NewValue":[1,"x"],"Missing":null}`; string(out) != want {
		t.Errorf("got %s, want %s", out, want)
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		err  APIError
		want string
	}{
		{APIError{StatusCode: 400, Message: "Errors in the filter", Errors: map[string]string{"filter[sinceId]": "must be a number"}},
			"retailcrm: 400 Errors in the filter: filter[sinceId]: must be a number"},
		{APIError{Endpoint: "/api/v5/orders", StatusCode: 404, Message: "Not found"},
			"retailcrm: /api/v5/orders: 404 Not found"},
		{APIError{StatusCode: 400, Message: "List", Errors: map[string]string{"10": "k", "2": "c", "0": "a", "1": "b", "3": "d", "4": "e", "5": "f", "6": "g", "7": "h", "8": "i", "9": "j"}},
			"retailcrm: 400 List: a; b; c; d; e; f; g; h; i; j; k"},
		{APIError{StatusCode: 400, Message: "Mixed", Errors: map[string]string{"b": "2", "1": "x", "a": "1"}},
			"retailcrm: 400 Mixed: 1: x; a: 1; b: 2"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		raw  string
		want map[string]string
	}{
		{`{"a":"x","b":{"c":1}}`, map[string]string{"a": "x", "b": `{"c":1}`}},
		{`["x", 2]`, map[string]string{"0": "x", "1": "2"}},
		{`[]`, nil},
		{`{}`, nil},
		{`null`, nil},
		{``, nil},
		{`"just a string"`, nil},
	}
	for _, tt := range tests {
		got := decodeErrors(json.RawMessage(tt.raw))
		if len(got) != len(tt.want) {
			t.Errorf("decodeErrors(%s) = %v, want %v", tt.raw, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("decodeErrors(%s)[%s] = %q, want %q", tt.raw, k, got[k], v)
			}
		}
	}
}

func TestLenientScalars(t *testing.T) {
	tests := []struct {
		raw  string
		s    string
		n    int64
		f    float64
		b    bool
		id   int64
		idOK bool
	}{
		{`"12"`, "12", 12, 12, false, 12, true},
		{`12`, "12", 12, 12, false, 12, true},
		{`12.0`, "12.0", 12, 12, false, 0, false},
		{`12.5`, "12.5", 0, 12.5, false, 0, false},
		{`true`, "true", 0, 0, true, 0, false},
		{`"1"`, "1", 1, 1, true, 1, true},
		{`null`, "", 0, 0, false, 0, false},
		{`{"a":1}`, "", 0, 0, false, 0, false},
		{`[1]`, "", 0, 0, false, 0, false},
		{`-4`, "-4", -4, -4, false, 0, false},
		{`1e400`, "1e400", 0, 0, false, 0, false},
		{`"x"`, "x", 0, 0, false, 0, false},
	}
	for _, tt := range tests {
		var s lenientString
		var n lenientInt
		var f lenientFloat
		var b lenientBool
		for _, u := range []json.Unmarshaler{&s, &n, &f, &b} {
			if err := u.UnmarshalJSON([]byte(tt.raw)); err != nil {
				t.Errorf("%T(%s): %v", u, tt.raw, err)
			}
		}
		id, err := parseID(json.RawMessage(tt.raw))
		if string(s) != tt.s || int64(n) != tt.n || float64(f) != tt.f || bool(b) != tt.b || id != tt.id || (err == nil) != tt.idOK {
			t.Errorf("%s: got %q %d %v %v id %d (%v)", tt.raw, s, n, f, b, id, err)
		}
	}
}

func TestLenientStrings(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
		ok   bool
	}{
		{`["a","b"]`, []string{"a", "b"}, true},
		{`{"0":"a","2":"b","10":"c"}`, []string{"a", "b", "c"}, true},
		{`[1, true, "x", null, {}]`, []string{"1", "true", "x"}, true},
		{`[]`, nil, true},
		{`{}`, nil, true},
		{`null`, nil, false},
		{`"a"`, nil, false},
		{`17`, nil, false},
		{``, nil, false},
	}
	for _, tt := range tests {
		var l lenientStrings
		if err := l.UnmarshalJSON([]byte(tt.raw)); err != nil || l.ok != tt.ok || !slices.Equal(l.list, tt.want) {
			t.Errorf("lenientStrings(%s) = %q ok %v (%v), want %q ok %v", tt.raw, l.list, l.ok, err, tt.want, tt.ok)
		}
	}
}

func TestParseFlag(t *testing.T) {
	for raw, want := range map[string][2]bool{
		`true`: {true, true}, `"true"`: {true, true}, `1`: {true, true}, `"1"`: {true, true},
		`false`: {false, true}, `"false"`: {false, true}, `0`: {false, true}, `"0"`: {false, true},
		`null`: {false, false}, `"yes"`: {false, false}, `2`: {false, false}, `{}`: {false, false}, ``: {false, false},
	} {
		if v, ok := parseFlag([]byte(raw)); v != want[0] || ok != want[1] {
			t.Errorf("parseFlag(%s) = %v, %v; want %v, %v", raw, v, ok, want[0], want[1])
		}
	}
}

// FuzzDecodeHistory: never panics; refuses a body only when it is not an
// object whose "history" is a list; then every entry is there, in order,
// with its order and values byte for byte, a canonical id read as itself
// and anything else as 0, and the order's odd shapes flagged.
func FuzzDecodeHistory(f *testing.F) {
	for _, name := range []string{"history.json", "truncated.json", "error_filter.json"} {
		f.Add(file(f, name))
	}
	for _, name := range sampleFiles(f) {
		f.Add(file(f, name))
	}
	f.Add([]byte(`{"history":[{"id":"7","oldValue":{"code":1},"newValue":[],"user":"x","apiKey":[],"order":{"id":"3","status":{"code":"a"}}}]}`))
	f.Add([]byte(`{"history":null,"pagination":[]}`))
	f.Add([]byte(`{"history":[{"id":1,"created":"1","field":"status","newValue":"approved","order":{"id":2,"site":7}}],"pagination":{"limit":"100","totalCount":1e3}}`))
	f.Add([]byte(`{"history":[{"id":9223372036854775808,"order":{"id":1}}]}`))
	f.Add([]byte(`{"history":[{"id":1,"ID":"x","order":null}]}`))
	f.Add([]byte(`{"history":[{"id":2,"order":[]},{"id":3,"order":"5"},{"id":4,"order":{"id":0}},{"id":5},7,null,[]]}`))
	f.Add([]byte(`{"history":[{"id":6,"created":true,"field":"order_product","item":{"id":1,"offer":{"id":2}},"order":{"id":9}},{"id":7,"created":"true","field":"payments","payment":{"id":3},"order":{"id":9}}]}`))
	f.Add([]byte(`{"history":[{"id":8,"deleted":true,"field":"id","combinedTo":{"id":10,"site":"s"},"ancestor":[],"order":{"id":9}},{"id":9,"item":[],"payment":{},"order":{"id":9,"statusUpdatedAt":17}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := decodeHistory(body)
		var orig struct {
			History json.RawMessage `json:"history"`
		}
		var entries []json.RawMessage
		readable := isObject(body) && json.Unmarshal(body, &orig) == nil && isArray(orig.History) &&
			json.Unmarshal(orig.History, &entries) == nil
		if err != nil {
			if readable {
				t.Fatalf("refused a page whose history is a list: %v", err)
			}
			return
		}
		if !readable || len(entries) != len(page.History) {
			t.Fatalf("decoded %d entries from a body the standard decoder reads as %d (readable %v)", len(page.History), len(entries), readable)
		}
		for i, e := range page.History {
			var o struct {
				ID       json.RawMessage `json:"id"`
				Order    json.RawMessage `json:"order"`
				OldValue json.RawMessage `json:"oldValue"`
				NewValue json.RawMessage `json:"newValue"`
			}
			if !isObject(entries[i]) || json.Unmarshal(entries[i], &o) != nil {
				if e.ID != 0 || e.Order != nil {
					t.Fatalf("entry %d %.40q is not an object, yet decoded as %+v", i, entries[i], e)
				}
				continue
			}
			if want, _ := parseID(o.ID); e.ID != want || canonicalID(o.ID) && e.ID <= 0 {
				t.Fatalf("entry %d: id %d from %q", i, e.ID, o.ID)
			}
			switch {
			case isNull(o.Order):
				if e.Order != nil {
					t.Fatalf("entry %d: order %+v from %q", i, e.Order, o.Order)
				}
			case e.Order == nil || !bytes.Equal(e.Order.Raw, o.Order):
				t.Fatalf("entry %d: order %+v, want raw %q", i, e.Order, o.Order)
			case e.Order.NotObject == isObject(o.Order) || e.Order.NotObject && e.Order.ID != 0 || e.Order.ID < 0:
				t.Fatalf("entry %d: order %q decoded as id %d, not object %v", i, o.Order, e.Order.ID, e.Order.NotObject)
			}
			if !bytes.Equal(e.OldValue.Raw, o.OldValue) || !bytes.Equal(e.NewValue.Raw, o.NewValue) {
				t.Fatalf("entry %d: values %q -> %q, want %q -> %q", i, e.OldValue.Raw, e.NewValue.Raw, o.OldValue, o.NewValue)
			}
			var str string
			if json.Unmarshal(o.NewValue, &str) == nil && e.NewValue.Code() != str {
				t.Fatalf("entry %d: Code() of string %q = %q", i, o.NewValue, e.NewValue.Code())
			}
			for _, raw := range [][]byte{e.Item, e.Payment} {
				if raw != nil && (!json.Valid(raw) || isNull(raw)) {
					t.Fatalf("entry %d: item or payment %q", i, raw)
				}
			}
		}
	})
}

// canonicalID reports whether raw is an id every RetailCRM version sends: a
// JSON number or string of plain decimal digits, positive and within int64.
// The decoder must accept these; other shapes it may accept or refuse.
func canonicalID(raw json.RawMessage) bool {
	s := string(bytes.TrimSpace(raw))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0
}

// FuzzDecodeOrders: never panics; every returned order keeps its bytes
// exactly, returned plus skipped orders account for all of them, and an
// order object with a plain positive id is never skipped.
func FuzzDecodeOrders(f *testing.F) {
	for _, name := range []string{"orders.json", "truncated.json", "error_list.json"} {
		f.Add(file(f, name))
	}
	f.Add([]byte(`{"orders":[{"id":1,"payments":{"1":{"amount":"x"}},"customFields":[]},{"id":-1},7,null]}`))
	f.Add([]byte(`{"orders":[{"id":"2","payments":[],"customFields":{"a":[1,{"b":null}]},"status":{"code":"new"}},{"id":1.5},{"id":"1e3"}]}`))
	f.Add([]byte(`{"orders":[{"id":3,"payments":{"1":{"amount":1e400,"id":"x"}}}]}`))
	f.Add([]byte(`{"orders":[{"id":4,"payments":[{"id":7,"amount":"5"},{"type":"cash"},3,null],"statusUpdatedAt":"2026-11-23 09:00:00"},{"id":5,"payments":{}}]}`))
	for _, name := range sampleFiles(f) {
		f.Add(file(f, name))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		page, skipped, err := decodeOrders(body)
		if err != nil {
			return
		}
		orders := page.Orders
		var orig struct {
			Orders []json.RawMessage `json:"orders"`
		}
		if json.Unmarshal(body, &orig) != nil || len(orders)+len(skipped) != len(orig.Orders) {
			t.Fatalf("%d orders + %d skipped from %d", len(orders), len(skipped), len(orig.Orders))
		}
		j := 0
		for i, raw := range orig.Orders {
			if j < len(orders) && bytes.Equal(orders[j].Raw, raw) {
				if orders[j].ID <= 0 {
					t.Fatalf("order id %d", orders[j].ID)
				}
				for k, p := range orders[j].Payments {
					if math.IsNaN(p.Amount) || math.IsInf(p.Amount, 0) {
						t.Fatalf("order %d payment %s: amount %v", orders[j].ID, k, p.Amount)
					}
				}
				j++
				continue
			}
			var o struct {
				ID json.RawMessage `json:"id"`
			}
			if isObject(raw) && json.Unmarshal(raw, &o) == nil && canonicalID(o.ID) {
				t.Fatalf("orders[%d] %.80q with a plain id was skipped", i, raw)
			}
		}
		if j != len(orders) {
			t.Fatalf("only %d of %d orders keep their raw bytes in order", j, len(orders))
		}
	})
}

// pageOf builds a body of n copies of the first order of orders.json, or of
// n creation entries of history.json, with distinct ids.
func pageOf(b *testing.B, n int, history bool) []byte {
	b.Helper()
	var buf bytes.Buffer
	if history {
		var src struct{ History []json.RawMessage }
		if err := json.Unmarshal(file(b, "history.json"), &src); err != nil {
			b.Fatal(err)
		}
		buf.WriteString(`{"success":true,"generatedAt":"2018-10-03 11:30:02","history":[`)
		for i := range n {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(bytes.Replace(src.History[0], []byte(`"id": 7040`), fmt.Appendf(nil, `"id": %d`, 7040+i), 1))
		}
		buf.WriteString(`],"pagination":{"limit":100,"totalCount":100,"currentPage":1,"totalPageCount":1}}`)
		return buf.Bytes()
	}
	var src struct{ Orders []json.RawMessage }
	if err := json.Unmarshal(file(b, "orders.json"), &src); err != nil {
		b.Fatal(err)
	}
	buf.WriteString(`{"success":true,"orders":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(bytes.Replace(src.Orders[0], []byte(`"id": 5402`), fmt.Appendf(nil, `"id": %d`, 5402+i), 1))
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// BenchmarkDecodeHistory: a full page of 100 creation entries (the
// heaviest kind: each carries a full order).
func BenchmarkDecodeHistory(b *testing.B) {
	body := pageOf(b, 100, true)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, err := decodeHistory(body)
		if err != nil || len(p.History) != 100 {
			b.Fatal(len(p.History), err)
		}
	}
}

// BenchmarkDecodeOrders: a full page of 100 orders.
func BenchmarkDecodeOrders(b *testing.B) {
	body := pageOf(b, 100, false)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, skipped, err := decodeOrders(body)
		if err != nil || len(p.Orders) != 100 || len(skipped) != 0 {
			b.Fatal(len(p.Orders), skipped, err)
		}
	}
}
