package tmpl

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// testData is shaped like a delivery's template data: a decoded order (with
// json.Number, as the deliverer decodes with UseNumber), the change and the
// event.
func testData(t testing.TB) map[string]any {
	t.Helper()
	const orderJSON = `{
		"id": 4242, "number": "4242A", "totalSumm": 1500.5, "bigId": 10000000000,
		"customer": {"firstName": "Ama", "lastName": "Mensah", "email": null},
		"items": [{"offer": {"name": "Shea butter"}, "quantity": 2}],
		"customFields": {"my-field": "x"},
		"payments": {"17": {"amount": 10}},
		"call": true, "expired": false, "tags": []
	}`
	d := json.NewDecoder(strings.NewReader(orderJSON))
	d.UseNumber()
	var order map[string]any
	if err := d.Decode(&order); err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"account": "ghana",
		"order":   order,
		"change":  map[string]any{"oldValue": "new", "newValue": "approved", "historyId": float64(7044)},
		"event":   map[string]any{"id": "ghana-7044"},
		"raw":     json.RawMessage(`{"a": {"b": [1, "two"]}}`),
		"float":   1e6,
		"small":   1.5e-7,
	}
}

func TestRender(t *testing.T) {
	data := testData(t)
	tests := []struct {
		src, want string
	}{
		{"", ""},
		{"plain text", "plain text"},
		{"{{ order.id }}", "4242"},
		{"{{order.id}}", "4242"},
		{"{{ \t order.id \n }}", "4242"},
		{"id={{ order.id }}&n={{ order.number }}!", "id=4242&n=4242A!"},
		{"{{ order.customer.firstName }} {{ order.customer.lastName }}", "Ama Mensah"},
		{"{{ change.oldValue }}->{{ change.newValue }}", "new->approved"},
		{"{{ account }}/{{ event.id }}", "ghana/ghana-7044"},
		{"{{ order.items.0.offer.name }}", "Shea butter"},
		{"{{ order.items[0].offer.name }}", "Shea butter"},
		{"{{ order.items[ 0 ]['offer'][\"name\"] }}", "Shea butter"},
		{"{{ order.customFields['my-field'] }}", "x"},
		{"{{ order.payments.17.amount }}", "10"},
		{"{{ order.totalSumm }}", "1500.5"},
		{"{{ order.bigId }}", "10000000000"},
		{"{{ change.historyId }}", "7044"},
		{"{{ float }}", "1000000"},
		{"{{ small }}", "1.5e-07"},
		{"{{ order.call }}", "1"},
		{"{{ order.expired }}", ""},
		{"{{ order.customer.email }}", ""},
		{"[{{ order.missing.deep }}]", "[]"},
		{"[{{ order.items.5.offer }}]", "[]"},
		{"[{{ order.items.x }}]", "[]"},
		{"[{{ account.length }}]", "[]"},
		{"{{ order.items.0.offer }}", `{"name":"Shea butter"}`},
		{"{{ order.tags }}", `[]`},
		{"{{ order.customer|json_encode }}", `{"email":null,"firstName":"Ama","lastName":"Mensah"}`},
		{"{{ order.id | json_encode }}", "4242"},
		{"{{ account|json_encode }}", `"ghana"`},
		{"{{ order.missing|json_encode }}", "null"},
		{"{{ order.call|json_encode }}", "true"},
		{`{{ "a<b>/é"|json_encode }}`, `"a<b>/é"`},
		{"{{ float|json_encode }}", "1000000"},
		{"{{ raw.a.b.1 }}", "two"},
		{"{{ raw.a }}", `{"b":[1,"two"]}`},
		{"{{ order.missing|default('none') }}", "none"},
		{"{{ order.expired|default(\"no\") }}", "no"},
		{"{{ order.tags|default('none') }}", "none"},
		{"{{ order.id|default('none') }}", "4242"},
		{"{{ order.missing|default('x')|json_encode }}", `"x"`},
		{"{{ 'it\\'s' }}", "it's"},
		{"{{ order.call|raw }}", "1"},
		{`{{ 'a"b'|raw }}`, `a"b`},
		{"a  {{- account -}}  b", "aghanab"},
		{"a\n{{- account }}\nb", "aghana\nb"},
		{"}} and { and {x}", "}} and { and {x}"},
		{"{% raw %}", "{% raw %}"},
		{"é{{ account }}ü", "éghanaü"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tp, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := tp.Render(data); got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
			if tp.Source() != tt.src {
				t.Errorf("Source = %q, want %q", tp.Source(), tt.src)
			}
		})
	}
}

// hostileNames are customer names that try to break out of a JSON string
// or confuse a receiver.
var hostileNames = []string{
	`x", "admin": true, "y": "`,
	`back\slash\`,
	`\"`,
	"new\nline\r\n",
	"tab\there",
	"</script><script>alert(1)</script>",
	"&lt; & <!-- -->",
	"smile \U0001F600 clef \U0001D11E",
	"line\u2028para\u2029end",
	"nul\x00 bell\x07 esc\x1b del\x7f",
	`\u0022 is a quote`,
	"{{ order.id }}",
	"'single'",
	"",
	"Ama Mensah",
}

func TestRenderJSON(t *testing.T) {
	data := testData(t)
	data["text"] = map[string]any{
		"quote":  `x", "admin": true, "y": "`,
		"ctl":    "a\nb\tc\x01",
		"seps":   "\u2028\u2029",
		"bad":    "a\xffb",
		"html":   "<b>&</b>",
		"number": "4242",
	}
	data["forged"] = json.Number(`1, "admin": true`)
	data["spaced"] = json.Number("1\n") // valid JSON, but not only a number
	data["nan"] = math.NaN()
	data["neg"] = int64(-7)
	tests := []struct {
		src, want string
	}{
		{"{{ order.id }}", "4242"},
		{"{{ order.totalSumm }}", "1500.5"},
		{"{{ order.bigId }}", "10000000000"},
		{"{{ float }}", "1000000"},
		{"{{ small }}", "1.5e-07"},
		{"{{ neg }}", "-7"},
		{"{{ order.call }}", "true"},
		{"{{ order.expired }}", "false"},
		{"{{ order.customer.email }}", ""},
		{"{{ order.missing.deep }}", ""},
		{"{{ order.customer.firstName }}", "Ama"},
		{"{{ text.quote }}", `x\", \"admin\": true, \"y\": \"`},
		{"{{ text.ctl }}", `a\nb\tc\u0001`},
		{"{{ text.seps }}", `\u2028\u2029`},
		{"{{ text.bad }}", `a\ufffdb`},
		{"{{ text.html }}", "<b>&</b>"},
		{"{{ text.number }}", "4242"},
		{"{{ forged }}", `1, \"admin\": true`},
		{"{{ spaced }}", `1\n`},
		{"{{ nan }}", "NaN"},
		{"{{ order.items.0.offer }}", `{\"name\":\"Shea butter\"}`},
		{"{{ raw.a }}", `{\"b\":[1,\"two\"]}`},
		{`{{ 'a"b' }}`, `a\"b`},
		{`{{ order.missing|default('say "hi"') }}`, `say \"hi\"`},
		// |json_encode prints a whole JSON value, not escaped again.
		{"{{ order.customer|json_encode }}", `{"email":null,"firstName":"Ama","lastName":"Mensah"}`},
		{"{{ text.quote|json_encode }}", `"x\", \"admin\": true, \"y\": \""`},
		{"{{ order.call|json_encode }}", "true"},
		{"{{ order.missing|json_encode|default('x') }}", "null"},
		// |raw opts out: Twig's printing, unescaped.
		{"{{ text.quote|raw }}", `x", "admin": true, "y": "`},
		{"{{ order.call|raw }}", "1"},
		{`{"a": "{{ text.ctl }}", "b": {{ order.id }}}`, `{"a": "a\nb\tc\u0001", "b": 4242}`},
		{"no tags: \" \\", "no tags: \" \\"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tp, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := tp.RenderJSON(data); got != tt.want {
				t.Errorf("RenderJSON = %q, want %q", got, tt.want)
			}
		})
	}
}

// The case: a hostile last name between quotes stays one string
// value, byte for byte, and adds no key.
func TestRenderJSONHostileNames(t *testing.T) {
	tp, err := Parse(`{"note": "{{ order.customer.lastName }}", "id": {{ order.id }}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range hostileNames {
		t.Run(name, func(t *testing.T) {
			data := testData(t)
			data["order"].(map[string]any)["customer"].(map[string]any)["lastName"] = name
			out := tp.RenderJSON(data)
			var got map[string]any
			d := json.NewDecoder(strings.NewReader(out))
			d.UseNumber()
			if err := d.Decode(&got); err != nil {
				t.Fatalf("invalid JSON %q: %v", out, err)
			}
			if d.More() {
				t.Fatalf("data after the object in %q", out)
			}
			if len(got) != 2 || got["note"] != name || got["id"] != json.Number("4242") {
				t.Errorf("decoded %#v, want note %q and id 4242 only", got, name)
			}
		})
	}
}

func TestStartsJSON(t *testing.T) {
	tests := []struct {
		src  string
		want bool
	}{
		{`{"a": 1}`, true},
		{"  \n\t[1, {{ order.id }}]", true},
		{`{ "text": "{{ x }}" }`, true},
		{"{{ order|json_encode }}", true},
		{" {{- order.items|default('x')|json_encode -}} ", true},
		{"{{ order.id }}", false},
		{"{{ order.customer.firstName }} is {{ change.newValue }}", false},
		{"{{ order|raw }}", false},
		{"order {\"id\": 1}", false},
		{"", false},
		{"   ", false},
		{"\"quoted\"", false},
	}
	for _, tt := range tests {
		tp, err := Parse(tt.src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.src, err)
		}
		if got := tp.StartsJSON(); got != tt.want {
			t.Errorf("StartsJSON(%q) = %v, want %v", tt.src, got, tt.want)
		}
	}
}

func TestRenderNilData(t *testing.T) {
	tp, err := Parse("a{{ order.id }}b")
	if err != nil {
		t.Fatal(err)
	}
	if got := tp.Render(nil); got != "ab" {
		t.Errorf("Render(nil) = %q, want %q", got, "ab")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"abc {{ x", "unclosed {{ at column 5"},
		{"{{", "unclosed {{ at column 1"},
		{"{{ a }", "unclosed {{ at column 1"},
		{"{{ }}", "empty expression at column 1"},
		{"x{{-}}", "empty expression at column 2"},
		{"{{ order.id|upper }}", `unknown filter "upper" at column 13`},
		{"{{ order.id|raw() }}", `unexpected '(', want }} at column 16`},
		{"{{ order.id | }}", `want a filter name after "|" at column 15`},
		{"{{ a b }}", `unexpected 'b', want }} at column 6`},
		{"{{ a. }}", `want a name after "." at column 6`},
		{"{{ a[x] }}", `want an index or a quoted key after "[" at column 6`},
		{"{{ a[0 }}", "unclosed [ at column 8"},
		{"{{ 'abc }}", "unclosed string at column 4"},
		{"{{ ~ }}", `unexpected '~' at column 4`},
		{"{{ a|default }}", "default needs an argument: default('x') at column 14"},
		{"{{ a|default(x) }}", "default's argument must be a quoted string at column 14"},
		{"{{ a|default('x' }}", "unclosed ( at column 18"},
		{"line1\nline2 {{ a|nope }}", `unknown filter "nope" at line 2, column 12`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tp, err := Parse(tt.src)
			if err == nil {
				t.Fatalf("Parse succeeded: %#v", tp)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SyntaxError", err)
			}
			if se.Offset < 0 || se.Offset > len(tt.src) {
				t.Errorf("offset %d outside the source", se.Offset)
			}
		})
	}
}

// FuzzParseRender: a source either parses or fails with a SyntaxError that
// points inside it; a template that parses renders any JSON data without
// panicking, the same way every time (Render and RenderJSON), keeps tag-free
// text as it is, and a lone |json_encode tag always renders valid JSON. In
// RenderJSON a lone tag without |json_encode or |raw is always the inside of
// a JSON string, and a string value comes back from it exactly; with either
// opt-out it prints what Render prints.
func FuzzParseRender(f *testing.F) {
	data := []byte(`{"order": {"id": 4242, "items": [{"offer": {"name": "Shea \u00e9"}}], "n": 1e400, "f": 0.1}}`)
	for _, s := range []string{
		"", "x", "{{ order.id }}", "{{ order.items.0.offer.name|json_encode }}",
		"{{ a|default('x') }}", "{{- a -}}", "{{ a[0]['b'] }}", "{{ 'lit' }}",
		"{{", "{{ }}", "{{ a|upper }}", "{{ a[", "{{ 'x", "\n{{ a|default(",
		"{{ order|json_encode }}", "{{ order.n }}", "{{ order.f|json_encode }}", "}}{{ order.id }}}}",
		"{{ order.items[-1] }}", "{{ order['it\\'ems'] }}", "{{ 'caf\xe9' }}", "{{ order.id|default('x')|json_encode }}",
	} {
		f.Add(s, data)
	}
	f.Add("{{ a.b.c.d }}", []byte(`{"a": {"b": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}`))
	f.Add("{{ a }}", []byte(`{"a": "\ud800"}`))
	for _, name := range hostileNames {
		raw, _ := json.Marshal(map[string]string{"a": name})
		f.Add("{{ a }}", raw)
	}
	f.Fuzz(func(t *testing.T, src string, raw []byte) {
		tp, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(src) || se.Line < 1 || se.Column < 1 {
				t.Fatalf("bad error for %q: %#v", src, err)
			}
			if want := strings.Count(src[:se.Offset], "\n") + 1; se.Line != want {
				t.Fatalf("error at offset %d says line %d, want %d", se.Offset, se.Line, want)
			}
			return
		}
		if tp.Source() != src {
			t.Fatalf("Source() = %q, want %q", tp.Source(), src)
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var data map[string]any
		if d.Decode(&data) != nil {
			data = map[string]any{"raw": json.RawMessage(raw)}
		}
		out := tp.Render(data)
		if again := tp.Render(data); again != out {
			t.Fatalf("Render not deterministic: %q then %q", out, again)
		}
		if !strings.Contains(src, "{{") && out != src {
			t.Fatalf("text without tags changed: %q -> %q", src, out)
		}
		js := tp.RenderJSON(data)
		if again := tp.RenderJSON(data); again != js {
			t.Fatalf("RenderJSON not deterministic: %q then %q", js, again)
		}
		if !strings.Contains(src, "{{") && js != src {
			t.Fatalf("RenderJSON changed text without tags: %q -> %q", src, js)
		}
		if len(tp.parts) == 1 && tp.parts[0].expr != nil {
			e := tp.parts[0].expr
			fs := e.filters
			if len(fs) > 0 && fs[len(fs)-1].name == "json_encode" && !json.Valid([]byte(out)) {
				t.Fatalf("%q rendered invalid JSON %q", src, out)
			}
			optOut := slices.ContainsFunc(fs, func(f filter) bool { return f.name == "json_encode" || f.name == "raw" })
			if optOut {
				if js != out {
					t.Fatalf("%q: RenderJSON %q differs from Render %q despite the opt-out", src, js, out)
				}
				return
			}
			// Between quotes, the escaped output is one JSON string, and a
			// string value comes back exactly (invalid UTF-8 as U+FFFD).
			var back string
			if err := json.Unmarshal([]byte(`"`+js+`"`), &back); err != nil {
				t.Fatalf("%q: RenderJSON %q is not the inside of a JSON string: %v", src, js, err)
			}
			if sv, ok := lookup(data, e.path).(string); ok && e.path != nil && len(fs) == 0 && back != string([]rune(sv)) {
				t.Fatalf("%q: round trip %q, want %q", src, back, sv)
			}
		}
	})
}

// BenchmarkRender renders a typical trigger body, as Twig prints values
// and escaped for a JSON body.
func BenchmarkRender(b *testing.B) {
	tp, err := Parse(`{"id": {{ order.id }}, "name": "{{ order.customer.firstName }} {{ order.customer.lastName }}", ` +
		`"item": "{{ order.items.0.offer.name }}", "to": "{{ change.newValue }}", "customer": {{ order.customer|json_encode }}}`)
	if err != nil {
		b.Fatal(err)
	}
	data := testData(b)
	for _, mode := range []struct {
		name   string
		render func(map[string]any) string
	}{{"plain", tp.Render}, {"json", tp.RenderJSON}} {
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				mode.render(data)
			}
		})
	}
}
