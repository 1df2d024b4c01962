package condition

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestSemantics pins the meaning the reference documents: PHP's loose
// comparisons and truthiness, references, the order's PipeLang names, the
// operators and filters.
func TestSemantics(t *testing.T) {
	set := entries(t, paidSet)
	order := json.RawMessage(paidOrder)
	for _, tc := range []struct {
		src  string
		want any // bool, or "error"
	}{
		{`"100" == 100 and "1.0" == "1" and 100 == 100.0`, true},
		{`"abc" == 0`, false},
		{`null == false and null == "" and null == 0 and null == []`, true},
		{`null == "0"`, false},
		{`order.status == "complete" and "complete" == changeSet.newValue("status")`, true},
		{`not null and not "" and not "0" and not 0 and not []`, true},
		{`"0.0" and [0] and changeSet.newValue("status")`, true},
		{`order.status.code not in ["new", "cancel"] and 2 in [1, 2]`, true},
		{`order.phone matches "/^\\+7495/" and "ABC" matches "/abc/i" and not ("ABC" matches "abc")`, true},
		{`order.missing matches "/^$/"`, true},
		{`7 % 4 == 3 and 2 ** 10 == 1024 and -order.delivery.cost == -100 and 10 / 4 == 2.5`, true},
		{`order.totalSumm > 1000 ? order.phone != "" : false`, true},
		{`order.totalSumm and not order.missing and order.source.sourceName == "yandex"`, true},
		{`changeSet | every(i => i.created == false)`, true},
		{`order.firstName == "Ама" or changeSet | contains(i => i.fieldName == "status") and "é" != "e"`, true},
		// A filter binds tighter than any operator, as in PipeLang.
		{`order.totalSumm > 0 and changeSet | contains(i => i.fieldName == "status")`, true},
		{`not changeSet | contains(i => i.fieldName == "manager") and (changeSet) | any(i => i.deleted == false)`, true},
		{`changeSet | contains(i => i.fieldName == "status") and order.getPayments() | every(p => p.type == "cash") and 1 == 1`, true},
		{`changeSet | none(i => i.fieldName == "manager")`, true},
		{`changeSet | any(i => i.getFieldName() == "status" and i.getNewValue().getCode() == "complete")`, true},
		{`order.payments | contains(p => p.status == "paid") and order.payments | every(p => p.type == "cash")`, true},
		{`order.getCustomField("track") == "A1" and order.customFields.track == "A1" and order.customFields.none == null`, true},
		{`order.deliveryCost == 100 and order.getDeliveryType().getCode() == "russian-post" and order.deliveryAddress.getCity() == "Moscow"`, true},
		{`order.orderType.code == "eshop-legal" and order.site.code == "s1"`, true},
		{`changeSet.oldValue("status").groupCode == "new" and changeSet.newValue("status").getGroupCode() == "complete"`, true},
		{`changeSet.newValue("delivery_date") >= date("2000-01-01") and changeSet.newValue("delivery_date") < date("02.01.2000 00:00")`, true},
		{`changeSet.oldValue("delivery_date") == null`, true},
		{`null < 5`, "error"},
		{`order.status.code in "complete"`, "error"},
		{`order.phone + 1 > 74951111111 and order.status + 1 > 0`, "error"},
		{`changeSet.newValue("manager").code == "x"`, "error"},
		{`1 / 0 == 1`, "error"},
	} {
		c, err := Compile(tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got, err := c.Eval(set, order, testRefs)
		switch {
		case tc.want == "error":
			if !errors.Is(err, ErrEval) {
				t.Errorf("%s = %v, %v; want an ErrEval", tc.src, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s = %v, %v; want %v", tc.src, got, err, tc.want)
		}
	}
}

// TestDocumentedConditions: every condition the README and REFERENCE.md
// show compiles, names only history fields, and decides a change set.
func TestDocumentedConditions(t *testing.T) {
	var srcs []string
	for _, file := range []string{"../../README.md", "../../docs/REFERENCE.md"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// The examples of the Conditions sections.
		text := string(data)
		start := strings.Index(text, "## Conditions")
		if start < 0 {
			t.Fatalf("%s has no Conditions section", file)
		}
		text = text[start:]
		if file == "../../docs/REFERENCE.md" {
			text = text[strings.Index(text, "### Examples"):]
		}
		if end := strings.Index(text[3:], "\n## "); end > 0 {
			text = text[:end+3]
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(line, "| `"); ok && (strings.HasPrefix(rest, "changeSet") || strings.HasPrefix(rest, "order")) {
				if end := strings.Index(rest, "` |"); end > 0 && strings.Contains(rest[end:], " | ") && !strings.Contains(rest[:end], "`") {
					srcs = append(srcs, strings.ReplaceAll(rest[:end], `\|`, "|"))
				}
			}
			if rest, ok := strings.CutPrefix(line, "when: "); ok && !strings.HasPrefix(rest, ">") {
				srcs = append(srcs, rest)
			}
		}
	}
	if len(srcs) < 10 {
		t.Fatalf("only %d conditions found in the docs", len(srcs))
	}
	set := entries(t, paidSet)
	for _, src := range srcs {
		c, err := Compile(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if u := c.UnknownFields(); len(u) > 0 {
			t.Errorf("%s: unknown fields %q", src, u)
		}
		if _, err := c.Eval(set, json.RawMessage(paidOrder), testRefs); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// TestConcurrentEval: one Condition serves many goroutines, each with its
// own Env (run with -race).
func TestConcurrentEval(t *testing.T) {
	c, err := Compile(`changeSet | contains(i => i.fieldName == "status") and order.status.group.code == "complete"`)
	if err != nil {
		t.Fatal(err)
	}
	set := entries(t, paidSet)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if ok, err := c.EvalEnv(NewEnv(set, json.RawMessage(paidOrder), testRefs)); !ok || err != nil {
					t.Errorf("got %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
