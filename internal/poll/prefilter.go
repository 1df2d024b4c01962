package poll

import (
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
)

// A condition that names the order needs it fetched for every change set
// it decides. Most such conditions are a conjunction whose first parts
// test the change set: `changeSet.hasChangedField("status") and
// changeSet.newValue("status").code == "approved" and
// order.orderType.code == "eshop-legal"`. prefilter finds those parts: a
// set for which one of them is false cannot satisfy the whole, whatever
// the order holds, so it is decided without the order. Only a definite
// false decides; a part that fails, or is not a boolean, decides nothing
// and the whole condition waits for the order as before.

// prefilter returns the top-level `and` operands of c that do not read the
// order, compiled on their own; none when c is not such a conjunction (a
// top-level `or`, pipe or ternary, whose operands do not bound the whole)
// or an operand does not compile alone.
func prefilter(c *condition.Condition) []*condition.Condition {
	src := []rune(c.String())
	toks, err := lexer.Lex(file.NewSource(c.String()))
	if err != nil {
		return nil
	}
	var parts [][2]int // rune ranges of the operands
	depth, from := 0, 0
	for _, t := range toks {
		switch {
		case t.Kind == lexer.Bracket && (t.Value == "(" || t.Value == "[" || t.Value == "{"):
			depth++
		case t.Kind == lexer.Bracket:
			depth--
		case depth > 0 || t.Kind != lexer.Operator:
		case t.Value == "or" || t.Value == "||" || t.Value == "|" || t.Value == "?" || t.Value == "??":
			return nil
		case t.Value == "and" || t.Value == "&&":
			parts = append(parts, [2]int{from, t.From})
			from = t.To
		}
	}
	if len(parts) == 0 || from > len(src) {
		return nil
	}
	parts = append(parts, [2]int{from, len(src)})
	var pre []*condition.Condition
	for _, p := range parts {
		if p[0] < 0 || p[1] > len(src) || p[0] >= p[1] {
			return nil
		}
		part, err := condition.Compile(string(src[p[0]:p[1]]))
		if err != nil {
			return nil
		}
		if !part.ReadsOrder() {
			pre = append(pre, part)
		}
	}
	return pre
}

// ruledOut reports whether one of the parts is false over env: then the
// whole conjunction is false, whatever the order holds.
func ruledOut(pre []*condition.Condition, env *condition.Env) bool {
	for _, c := range pre {
		if ok, err := c.EvalEnv(env); err == nil && !ok {
			return true
		}
	}
	return false
}
