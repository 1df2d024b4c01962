package tmpl

import (
	"bytes"
	"encoding/json"
	"errors"
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
// panicking, the same way every time, keeps tag-free text as it is, and a
// lone |json_encode tag always renders valid JSON.
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
		if len(tp.parts) == 1 && tp.parts[0].expr != nil {
			fs := tp.parts[0].expr.filters
			if len(fs) > 0 && fs[len(fs)-1].name == "json_encode" && !json.Valid([]byte(out)) {
				t.Fatalf("%q rendered invalid JSON %q", src, out)
			}
		}
	})
}

// BenchmarkRender renders a typical trigger parameter set.
func BenchmarkRender(b *testing.B) {
	tp, err := Parse(`{"id": {{ order.id }}, "name": "{{ order.customer.firstName }} {{ order.customer.lastName }}", ` +
		`"item": "{{ order.items.0.offer.name }}", "to": "{{ change.newValue }}", "customer": {{ order.customer|json_encode }}}`)
	if err != nil {
		b.Fatal(err)
	}
	data := testData(b)
	b.ReportAllocs()
	for b.Loop() {
		tp.Render(data)
	}
}
