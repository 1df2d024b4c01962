// Package tmpl renders trigger-style templates, the subset of Twig that a
// RetailCRM trigger's "HTTP request" action uses in its parameters:
// {{ order.id }}, nested paths (order.items.0.offer.name, order.items[0],
// order.customFields['my_field']), string literals, and the filters
// |json_encode, |default('x') and |raw. {{- and -}} trim the whitespace
// next to a tag. A missing path renders empty, as in Twig.
//
// Render prints values the way Twig prints them: strings as they are,
// numbers as JSON numbers, true as "1", false and null as "", and objects
// and lists as JSON (Twig would fail on them; JSON is what a receiver can
// use). |raw changes nothing there.
//
// RenderJSON is for a body sent with a JSON Content-Type. There every tag's
// output is escaped as the inside of a JSON string (quotes, backslash,
// control characters, U+2028 and U+2029; invalid UTF-8 becomes U+FFFD), so
// a value placed between quotes stays one string whatever it holds: a
// customer named `x", "admin": true, "y": "` cannot add a key. Numbers
// print as themselves and booleans as true and false, so they can stand
// outside quotes; null prints empty. A tag ending in |json_encode prints a
// complete JSON value (not escaped again), and |raw prints the value as
// Render would, unescaped: the operator's explicit opt-out.
//
// StartsJSON tells, from the source alone, whether a body looks like JSON;
// the deliverer uses it to choose the Content-Type (and so the escaping)
// before any data is seen, so no value can switch it.
package tmpl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Template is a parsed template. It is safe for concurrent use.
type Template struct {
	src   string
	parts []part
}

// part is literal text or one {{ }} expression.
type part struct {
	text string
	expr *expr // nil for text
}

// expr is a value (a path or a literal) piped through filters.
type expr struct {
	path    []string // nil when literal is used
	literal string
	filters []filter
}

type filter struct {
	name string // json_encode | default | raw
	arg  string // default's argument
}

// SyntaxError is a template that does not parse. Offset is the 0-based byte
// offset into the source; Line and Column are 1-based (Column counts bytes).
type SyntaxError struct {
	Offset, Line, Column int
	Msg                  string
}

func (e *SyntaxError) Error() string {
	if e.Line > 1 {
		return fmt.Sprintf("%s at line %d, column %d", e.Msg, e.Line, e.Column)
	}
	return fmt.Sprintf("%s at column %d", e.Msg, e.Column)
}

// Parse compiles src. An unclosed tag, an empty expression or an unknown
// filter is an error that names the offending position.
func Parse(src string) (*Template, error) {
	p := parser{src: src}
	parts, err := p.parse()
	if err != nil {
		return nil, err
	}
	return &Template{src: src, parts: parts}, nil
}

// Source returns the text the template was parsed from.
func (t *Template) Source() string { return t.src }

// String returns the source, so a Template prints as the config wrote it.
func (t *Template) String() string { return t.src }

// Render evaluates the template against data, a JSON-like tree
// (map[string]any, []any, string, json.Number, float64, bool, nil;
// json.RawMessage values are decoded on the way), printing values as Twig
// does. It is for bodies that are not JSON and for params, which the
// deliverer encodes itself.
func (t *Template) Render(data map[string]any) string {
	return t.render(data, false)
}

// RenderJSON evaluates the template for a JSON body: every tag's output is
// escaped as the inside of a JSON string, except numbers, booleans (true,
// false), |json_encode and |raw (see the package comment).
func (t *Template) RenderJSON(data map[string]any) string {
	return t.render(data, true)
}

func (t *Template) render(data map[string]any, inJSON bool) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		b.WriteString(p.expr.eval(data, inJSON))
	}
	return b.String()
}

// StartsJSON reports whether the template, read as written, begins a JSON
// value: its first non-space character is "{" or "[" in the literal text,
// or it begins with a tag that prints |json_encode's output. It looks at
// the source only, so no rendered value can change the answer.
func (t *Template) StartsJSON() bool {
	for _, p := range t.parts {
		if p.expr != nil {
			return p.expr.encodes()
		}
		if s := strings.TrimLeft(p.text, " \t\r\n"); s != "" {
			return s[0] == '{' || s[0] == '['
		}
	}
	return false
}

// encodes reports whether the tag's output is a JSON value: |json_encode
// never prints an empty text, so a |default after it never applies.
func (e *expr) encodes() bool {
	return slices.ContainsFunc(e.filters, func(f filter) bool { return f.name == "json_encode" })
}

func (e *expr) eval(data map[string]any, inJSON bool) string {
	var v any = e.literal
	if e.path != nil {
		v = lookup(data, e.path)
	}
	verbatim := !inJSON
	for _, f := range e.filters {
		switch f.name {
		case "json_encode":
			v = jsonEncode(v)
			verbatim = true
		case "default":
			if empty(v) {
				v = f.arg
			}
		case "raw":
			verbatim = true
		}
	}
	if verbatim {
		return format(v)
	}
	return formatInJSON(v)
}

// lookup walks path through data; a missing step yields nil.
func lookup(data map[string]any, path []string) any {
	var cur any = data
	for _, seg := range path {
		if raw, ok := cur.(json.RawMessage); ok {
			cur = decodeRaw(raw)
		}
		switch c := cur.(type) {
		case map[string]any:
			cur = c[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	if raw, ok := cur.(json.RawMessage); ok {
		cur = decodeRaw(raw)
	}
	return cur
}

func decodeRaw(raw json.RawMessage) any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

// empty is Twig's test used by |default: null, false, "" and empty lists and
// objects (0 is not empty).
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// format prints v the way Twig prints a value.
func format(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		if v {
			return "1"
		}
		return ""
	case json.Number:
		return v.String()
	case float64:
		return formatFloat(v)
	case float32:
		return formatFloat(float64(v))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v)
	}
	return jsonEncode(v)
}

// formatInJSON prints v for a place inside a JSON string: numbers and
// booleans as JSON literals (so they also stand outside quotes), anything
// else as format prints it, escaped.
func formatInJSON(v any) string {
	switch n := v.(type) {
	case bool:
		return strconv.FormatBool(n)
	case json.Number:
		// A json.Number built from anything but a JSON number (data that
		// did not come from a decoder) is escaped like any text.
		if isJSONNumber(n.String()) {
			return n.String()
		}
	case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		if s := format(v); isJSONNumber(s) {
			return s
		}
	}
	return escapeJSON(format(v))
}

// isJSONNumber reports whether s is exactly one JSON number literal (not
// NaN or Inf, not a value with spaces or other data around it).
func isJSONNumber(s string) bool {
	return s != "" && (s[0] == '-' || isDigit(s[0])) && isDigit(s[len(s)-1]) && json.Valid([]byte(s))
}

// escapeJSON returns s as the inside of a JSON string: the encoding of s
// without its quotes. encoding/json escapes quotes, backslash, control
// characters, U+2028 and U+2029, and turns invalid UTF-8 into U+FFFD.
func escapeJSON(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s // the common case: plain ASCII, nothing to encode
	}
	q := jsonEncode(s)
	return q[1 : len(q)-1]
}

// needsEscape reports a rune encoding/json may rewrite inside a string;
// anything past ASCII goes to the encoder, which knows U+2028, U+2029 and
// invalid UTF-8.
func needsEscape(r rune) bool {
	return r < 0x20 || r == '"' || r == '\\' || r >= 0x7f
}

// formatFloat prints integral values without an exponent (1e+06 would
// surprise a receiver expecting an order id).
func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// jsonEncode is Twig's |json_encode; a value JSON cannot hold (NaN) encodes
// as null. Unlike PHP it leaves "/" and non-ASCII unescaped, which any JSON
// parser reads the same.
func jsonEncode(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "null"
	}
	return strings.TrimSuffix(b.String(), "\n")
}
