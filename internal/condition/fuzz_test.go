package condition

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// fuzzSeeds are expressions for both fuzz tests: the documented examples
// and forms near the edges of the language.
func fuzzSeeds(f *testing.F) []string {
	data, err := os.ReadFile("testdata/examples.txt")
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if src, ok := strings.CutPrefix(line, "when: "); ok {
			out = append(out, src)
		}
	}
	return append(out,
		`changeSet | every(i => i.newValue > 1)`, `order.items[0].offer.name matches "/^K/i"`,
		`order.payments | contains(p => p.status == "paid")`, `-order.totalSumm < 1 ? true : false`,
		`order.customFields["x"] ** 2 % 0 == 1`, `date(order.createdAt) >= date("2026-01-01 00:00")`,
		`changeSet.newValue("status") === "x"`, "changeSet.hasChangedField(\"status\")\n and\n\tfoo(",
		`[1, 'a', null, true] contains 1`, `order?.status`, `let x = 1; x`, `"\u00e9" matches "/(/"`,
		`changeSet | contains(item => item.fieldName == "x"`, `changeSet | contains(a => b => c)`,
	)
}

// FuzzCompile: any text compiles or fails with a position inside it, and
// never panics.
func FuzzCompile(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Compile(src)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("%q: error %T %v is not *Error", src, err, err)
			}
			lines := strings.Count(src, "\n") + 1
			if ce.Line < 1 || ce.Line > lines || ce.Column < 1 || ce.Msg == "" {
				t.Fatalf("%q: error at %d:%d (%q) is not within the source's %d lines", src, ce.Line, ce.Column, ce.Msg, lines)
			}
			if ce.Line == lines && utf8.ValidString(src) {
				last := src[strings.LastIndexByte(src, '\n')+1:]
				if ce.Column > utf8.RuneCountInString(last)+1 {
					t.Fatalf("%q: column %d past the end of the last line", src, ce.Column)
				}
			}
			return
		}
		if c.String() != src {
			t.Fatalf("String() = %q, want %q", c.String(), src)
		}
	})
}

// FuzzEval: a compiled expression over any history and order decides or
// fails with ErrEval, and never panics; without the order it decides the
// same or returns ErrNeedsOrder.
func FuzzEval(f *testing.F) {
	hist, err := os.ReadFile("testdata/sets/payment-paid.history.json")
	if err != nil {
		f.Fatal(err)
	}
	var page struct {
		History json.RawMessage `json:"history"`
	}
	if err := json.Unmarshal(hist, &page); err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds(f) {
		f.Add(s, string(page.History), paidOrder)
		f.Add(s, `[{"id": 1, "created": true, "field": "status", "newValue": {"code": 5}, "order": []}]`, `[]`)
		f.Add(s, `[{"field": "status", "newValue": "complete"}, 7, null]`, `{"status": {"code": []}, "delivery": "x", "items": {"1": {}}}`)
	}
	refs := statuses{"complete": "complete", "new": "new"}
	f.Fuzz(func(t *testing.T, src, history, order string) {
		c, err := Compile(src)
		if err != nil {
			return
		}
		var set []retailcrm.HistoryEntry
		if json.Unmarshal([]byte(history), &set) != nil {
			set = nil
		}
		for _, r := range []Refs{refs, nil} {
			ok, err := c.Eval(set, json.RawMessage(order), r)
			if err != nil && !errors.Is(err, ErrEval) {
				t.Fatalf("%q: error %v is not ErrEval", src, err)
			}
			// Without the order: the same outcome, or ErrNeedsOrder.
			lazy, lerr := c.EvalEnv(NewEnvWithoutOrder(set, r))
			if !errors.Is(lerr, ErrNeedsOrder) && outcome(lazy, lerr) != outcome(ok, err) {
				t.Fatalf("%q: %s without the order, %s with it", src, outcome(lazy, lerr), outcome(ok, err))
			}
		}
	})
}
