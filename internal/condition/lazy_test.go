package condition

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// namesOrder reports whether src has the identifier order anywhere (also
// as a property name: the check it guards only skips more).
func namesOrder(src string) bool {
	toks, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		return strings.Contains(src, "order")
	}
	for _, t := range toks {
		if t.Kind == lexer.Identifier && t.Value == "order" {
			return true
		}
	}
	return false
}

// Without the order, evaluation decides what the entries decide and stops
// at the first read of the order.
func TestEvalWithoutOrder(t *testing.T) {
	status := entries(t, paidSet) // changes the status, and a payment to paid
	comment := entries(t, `[{"id": 21, "createdAt": "2026-12-01 10:00:00", "source": "user", "field": "manager_comment", "oldValue": null, "newValue": "call", "order": {"id": 6, "site": "s1"}}]`)
	const needs = "needs the order"
	for _, tc := range []struct {
		src  string
		set  []retailcrm.HistoryEntry
		want string // "true", "false", "error" or needs
	}{
		{`changeSet.hasChangedField("status") and changeSet.newValue("status").code == "approved" and order.orderType.code == "eshop-legal"`, comment, "false"},
		{`changeSet.hasChangedField("status") and changeSet.newValue("status").code == "approved" and order.orderType.code == "eshop-legal"`, status, "false"},
		{`changeSet.hasChangedField("status") and changeSet.newValue("status").code == "complete" and order.orderType.code == "eshop-legal"`, status, needs},
		{`order.orderType.code == "eshop-legal" and changeSet.hasChangedField("status")`, comment, needs},
		{`changeSet.hasChangedField("status") or order.site == "s1"`, status, "true"},
		{`changeSet.hasChangedField("status") or order.site == "s1"`, comment, needs},
		{`changeSet.isCreate() ? order.site == "s1" : false`, status, "false"},
		{`not changeSet.isCreate() ? order.site == "s1" : false`, status, needs},
		{`changeSet | contains(item => item.fieldName == "status" and order.site == "s1")`, comment, "false"},
		{`changeSet | contains(item => item.fieldName == "status" and order.site == "s1")`, status, needs},
		{`changeSet.newValue("status").code == "approved" and order.orderType.code == "eshop-legal"`, comment, "error"},
		{`order and changeSet.isCreate()`, status, "false"}, // the order object itself is not its content
		{`order == null`, status, "false"},
		{`order.getCustomField("track") != null`, status, needs},
		{`order["site"] == "s1"`, status, needs},
		{`order.getSite() == "s1"`, status, needs},
	} {
		c, err := Compile(tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		ok, err := c.EvalEnv(NewEnvWithoutOrder(tc.set, testRefs))
		got := fmt.Sprint(ok)
		switch {
		case errors.Is(err, ErrNeedsOrder):
			got = needs
		case errors.Is(err, ErrEval):
			got = "error"
		case err != nil:
			t.Errorf("%s: error %v is neither ErrNeedsOrder nor ErrEval", tc.src, err)
		}
		if got != tc.want {
			t.Errorf("%s over set %d: %s (%v), want %s", tc.src, tc.set[0].ID, got, err, tc.want)
		}
	}
}

// lazyAtoms are the parts randomExpr combines: over the change set, over
// the order, both, and ones that fail at run time on some sets.
var lazyAtoms = []string{
	`changeSet.hasChangedField("status")`,
	`changeSet.isCreate()`,
	`changeSet.isUpdate()`,
	`changeSet.newValue("status").code == "complete"`,
	`changeSet.newValue("status").group.code == "complete"`,
	`changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid")`,
	`changeSet.newValue("delivery_cost") > 50`,
	`changeSet.hasChangedField("manager")`,
	`true`,
	`null`,
	`order.status.code == "complete"`,
	`order.orderType.code == "eshop-legal"`,
	`order.getDeliveryType().getCode() == "russian-post"`,
	`order.totalSumm >= 1000`,
	`order.getCustomField("track") != null`,
	`order.payments | contains(p => p.status == "paid")`,
	`order.status.group.code == "complete"`,
	`order`,
	`order == null`,
	`changeSet | contains(item => item.fieldName == "status" and order.site == "s1")`,
}

// randomExpr combines atoms with and, or, not, the ternary and both
// spellings of the operators, depth levels deep.
func randomExpr(rng *rand.Rand, depth int) string {
	if depth == 0 || rng.IntN(4) == 0 {
		return lazyAtoms[rng.IntN(len(lazyAtoms))]
	}
	a, b := randomExpr(rng, depth-1), randomExpr(rng, depth-1)
	switch rng.IntN(6) {
	case 0:
		return "(" + a + ") and (" + b + ")"
	case 1:
		return "(" + a + ") or (" + b + ")"
	case 2:
		return "not (" + a + ")"
	case 3:
		return "(" + a + ") ? (" + b + ") : (" + randomExpr(rng, depth-1) + ")"
	case 4:
		return "(" + a + ") && (" + b + ")"
	}
	return "(" + a + ") || (" + b + ")"
}

// outcome is a verdict or an error, comparable.
func outcome(ok bool, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprint(ok)
}

// The property the poll relies on: over an Env without the order, a
// verdict or a run-time error is exactly what the full evaluation gives
// with every order, and ErrNeedsOrder comes only from an expression that
// names the order. Over the documented examples, the other tests'
// expressions and random combinations, every change set of testdata and
// several orders (each set's own, none, another set's, odd shapes).
func TestEvalWithoutOrderDecidesAsWithEveryOrder(t *testing.T) {
	var srcs []string
	for _, ex := range readExamples(t) {
		srcs = append(srcs, ex.when)
	}
	srcs = append(srcs, lazyAtoms...)
	rng := rand.New(rand.NewPCG(19, 1))
	for range 300 {
		srcs = append(srcs, randomExpr(rng, 3))
	}
	names, sets := readSets(t)
	sets["paid"] = savedSet{entries: entries(t, paidSet), order: json.RawMessage(paidOrder)}
	names = append(names, "paid")
	orders := []json.RawMessage{nil, json.RawMessage(`null`), json.RawMessage(`[]`), json.RawMessage(paidOrder),
		json.RawMessage(`{"status": 5, "delivery": [], "orderType": {"code": "eshop-legal"}, "payments": []}`)}
	for _, name := range names {
		orders = append(orders, sets[name].order)
	}
	conds := make([]*Condition, len(srcs))
	for i, src := range srcs {
		c, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		conds[i] = c
	}
	var decided, needed int // of the expressions that name the order
	for _, refs := range []Refs{readStatuses(t), nil} {
		for _, name := range names {
			set := sets[name].entries
			shared := NewEnvWithoutOrder(set, refs) // as the poll shares one per set
			for i, c := range conds {
				ok, err := c.EvalEnv(NewEnvWithoutOrder(set, refs))
				if okS, errS := c.EvalEnv(shared); outcome(okS, errS) != outcome(ok, err) {
					t.Errorf("%s over %s: %s over the shared Env, %s alone", srcs[i], name, outcome(okS, errS), outcome(ok, err))
				}
				if errors.Is(err, ErrNeedsOrder) {
					if !namesOrder(srcs[i]) {
						t.Errorf("%s over %s: ErrNeedsOrder, but it does not name the order", srcs[i], name)
					}
					needed++
					continue
				}
				if namesOrder(srcs[i]) {
					decided++
				}
				for _, order := range orders {
					full, ferr := c.Eval(set, order, refs)
					if outcome(full, ferr) != outcome(ok, err) {
						t.Errorf("%s over %s: %s without the order, %s with %s", srcs[i], name, outcome(ok, err), outcome(full, ferr), order)
					}
				}
			}
		}
	}
	// Both ways occur, or the property above tested nothing.
	if decided == 0 || needed == 0 {
		t.Errorf("expressions over the order: %d decided without it, %d needed it", decided, needed)
	}
	t.Logf("%d expressions over %d sets: %d evaluations of expressions naming the order decided without it, %d needed it", len(srcs), len(names), decided, needed)
}
