package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestWhenErrorPositions: a bad expression is reported at the file line of
// the mistake, with its column in the expression and, where the value's
// place in the file can be told, in the file; for every way YAML writes a
// string.
func TestWhenErrorPositions(t *testing.T) {
	const prefix = "        when: "
	tests := []struct {
		name  string
		value string // the YAML after "when: ", on line 8 and on
		// where "bogus" is: its expression line and column, and its file
		// line and column (0: not told)
		exprLine, exprCol, fileLine int
		multiline                   bool
	}{
		{name: "plain", value: `changeSet.hasChangedField("status") and bogus`, exprLine: 1, fileLine: 8},
		{name: "single-quoted with ''", value: `'order.phone == ''+7'' and bogus'`, exprLine: 1, fileLine: 8},
		{name: "double-quoted with \\\"", value: `"changeSet.newValue(\"status\").code == \"a\" and bogus"`, exprLine: 1, fileLine: 8},
		{name: "literal block", value: "|\n          changeSet.hasChangedField(\"status\")\n            and bogus", exprLine: 2, fileLine: 10, multiline: true},
		{name: "folded block", value: ">-\n          changeSet.hasChangedField(\"status\")\n          and bogus", exprLine: 1, fileLine: 10},
		{name: "plain on two lines", value: "changeSet.hasChangedField(\"status\")\n          and bogus", exprLine: 1, fileLine: 9},
		{name: "non-ASCII before", value: `order.firstName == "Ама" and bogus`, exprLine: 1, fileLine: 8},
		{name: "from a variable", value: "${COND}", exprLine: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := minimal + prefix + tt.value + "\n"
			_, err := Parse("c.yaml", []byte(data), env(map[string]string{"COND": "bogus"}))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a config error", err)
			}
			// Where "bogus" is, counted independently of the code: in the
			// file, and in the expression (the value as decoded).
			lines := strings.Split(data, "\n")
			fileCol := 0
			if tt.fileLine > 0 {
				fileCol = len([]rune(lines[tt.fileLine-1][:strings.Index(lines[tt.fileLine-1], "bogus")])) + 1
			}
			exprCol := 1
			if tt.value != "${COND}" {
				decoded := map[string]string{
					"plain": `changeSet.hasChangedField("status") and bogus`, "single-quoted with ''": `order.phone == '+7' and bogus`,
					"double-quoted with \\\"": `changeSet.newValue("status").code == "a" and bogus`,
					"literal block":           "changeSet.hasChangedField(\"status\")\n  and bogus\n",
					"folded block":            `changeSet.hasChangedField("status") and bogus`,
					"plain on two lines":      `changeSet.hasChangedField("status") and bogus`,
					"non-ASCII before":        `order.firstName == "Ама" and bogus`,
				}[tt.name]
				line := strings.Split(decoded, "\n")[tt.exprLine-1]
				exprCol = len([]rune(line[:strings.Index(line, "bogus")])) + 1
			}
			at := fmt.Sprintf("column %d of the expression", exprCol)
			if tt.multiline {
				at = fmt.Sprintf("line %d, column %d of the expression", tt.exprLine, exprCol)
			}
			wantLine := 8
			if tt.fileLine > 0 {
				at += fmt.Sprintf(", column %d of line %d", fileCol, tt.fileLine)
				wantLine = tt.fileLine
			}
			want := fmt.Sprintf("c.yaml:%d: accounts[0].webhooks[0].when: bad expression at %s: unknown name bogus (the names are changeSet and order)", wantLine, at)
			if err.Error() != want {
				t.Errorf("error\n  %s\nwant\n  %s", err, want)
			}
		})
	}
}

func TestWhenWarningsAndEmpty(t *testing.T) {
	data := strings.Replace(minimal, "accounts:", `defaults:
  webhooks:
    - url: https://app.example.com/hook
      when: changeSet.hasChangedField("statuss") or changeSet | contains(i => i.fieldName == "custom_x" or i.fieldName == "paymens.status")
accounts:
  - name: accra
    url: https://aff-gh.retailcrm.ru
    api_key: key2
  - name: kumasi
    url: https://aff-gh.retailcrm.ru
    api_key: key3`, 1)
	cfg, err := Parse("c.yaml", []byte(data), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`c.yaml:5: defaults.webhooks[0].when: "statuss" is not a field of the order history, so it never changes (custom fields are custom_<code>)`,
		`c.yaml:5: defaults.webhooks[0].when: "paymens.status" is not a field of the order history, so it never changes (custom fields are custom_<code>)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings (once, though two accounts inherit the webhook):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if cfg.Accounts[0].Webhooks[0].When == nil || cfg.Accounts[1].Webhooks[0].When == nil || cfg.Accounts[2].Webhooks[0].When != nil {
		t.Error("accra and kumasi inherit the defaults' webhook and its condition; ghana has its own, without")
	}

	_, err = Parse("c.yaml", []byte(minimal+"        when: \"  \"\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), `c.yaml:8: accounts[0].webhooks[0].when: must not be empty`) {
		t.Errorf("empty when: error %v", err)
	}
}

// FuzzWhenPosition: whatever YAML writes after when:, loading never
// panics, and every error about it points at a line of the file.
func FuzzWhenPosition(f *testing.F) {
	for _, v := range []string{
		`changeSet.hasChangedField("status") and bogus`, `'order.phone == ''+7'' and bogus'`,
		`"changeSet.newValue(\"status\") and \n bogus"`, "|\n          a and\n            bogus", ">-\n          a\n\n          and (",
		"changeSet\n          and bogus", `"\u00e9\t" == x`, "${COND}", `[a, b]`, `{a: b}`, `"\\" and x`,
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value string) {
		data := minimal + "        when: " + value + "\n"
		_, err := Parse("c.yaml", []byte(data), env(map[string]string{"COND": "bogus"}))
		lines := strings.Count(data, "\n") + 1
		var ce *Error
		for _, e := range unwrapAll(err) {
			if errors.As(e, &ce) && (ce.Line < 0 || ce.Line > lines) {
				t.Fatalf("%q: error at line %d of %d: %v", value, ce.Line, lines, e)
			}
		}
	})
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
