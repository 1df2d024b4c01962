package condition

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
)

// The functions the rewritten tree calls. An expression cannot call them
// itself: the rewriter accepts only date() as a plain function call.
const (
	fnBool  = "_bool"
	fnEq    = "_eq"
	fnCmp   = "_cmp"
	fnIn    = "_in"
	fnMatch = "_match"
	fnMath  = "_math"
	fnNeg   = "_neg"
	fnGet   = "_get"
	fnIndex = "_index"
	fnCall  = "_call"
	fnItems = "_items"
	fnDate  = "_date"
)

// compile parses src with expr, rewrites the tree onto this package's
// functions and compiles it.
func compile(src string) (*Condition, error) {
	s, perr := prepare(src)
	if perr != nil {
		return nil, perr
	}
	cfg := newConfig()
	tree, err := parser.ParseWithConfig(s.text, cfg)
	if err != nil {
		return nil, s.exprError(err)
	}
	r := &rewriter{src: s}
	tree.Node = r.node(tree.Node, nil)
	if r.err != nil {
		return nil, r.err
	}
	tree.Node = call(fnBool, tree.Node)
	if _, err := checker.Check(tree, cfg); err != nil {
		return nil, s.exprError(err)
	}
	program, err := compiler.Compile(tree, cfg)
	if err != nil {
		return nil, s.exprError(err)
	}
	return &Condition{src: src, program: program, unknown: r.unknown}, nil
}

// exprError turns an error of expr's parser or checker into an *Error at
// the position in the original source.
func (s *source) exprError(err error) *Error {
	var fe *file.Error
	if errors.As(err, &fe) {
		if strings.HasPrefix(fe.Message, "unexpected token EOF") {
			// expr places the end at the last character.
			return s.errorAt(len(s.orig), "the expression ends too early")
		}
		return s.errorAtText(fe.From, fe.Message)
	}
	return &Error{Line: 1, Column: 1, Msg: err.Error()}
}

// vars is the expression's environment: its two variables.
type vars struct {
	ChangeSet any `expr:"changeSet"`
	Order     any `expr:"order"`
}

func newConfig() *conf.Config {
	cfg := conf.New(vars{})
	cfg.Strict = true
	for name, fn := range functions() {
		cfg.Functions[name] = fn
	}
	cfg.Check()
	return cfg
}

// rewriter maps expr's tree onto this package's functions; it accepts
// only the nodes of the language and reports the first other one.
type rewriter struct {
	src     *source
	err     *Error
	unknown []string
}

func (r *rewriter) fail(n ast.Node, format string, args ...any) ast.Node {
	if r.err == nil {
		r.err = r.src.errorAtText(n.Location().From, fmt.Sprintf(format, args...))
	}
	return &ast.NilNode{}
}

// call is a call of one of this package's functions.
func call(name string, args ...ast.Node) ast.Node {
	n := &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: args}
	if len(args) > 0 {
		n.SetLocation(args[0].Location())
		n.Callee.SetLocation(args[0].Location())
	}
	return n
}

func str(s string) ast.Node { return &ast.StringNode{Value: s} }

// node rewrites n; scope holds the closure parameters in reach.
func (r *rewriter) node(n ast.Node, scope []string) ast.Node {
	if r.err != nil {
		return n
	}
	out := r.rewrite(n, scope)
	if out != n && out.Location() == (file.Location{}) {
		out.SetLocation(n.Location())
	}
	return out
}

func (r *rewriter) rewrite(n ast.Node, scope []string) ast.Node {
	switch n := n.(type) {
	case *ast.NilNode, *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.PointerNode:
		return n
	case *ast.IdentifierNode:
		for _, v := range scope { // a filter's parameter
			if v == n.Value {
				return n
			}
		}
		switch n.Value {
		case "order", "changeSet":
			return n
		case "null", "NULL":
			return &ast.NilNode{}
		case "TRUE":
			return &ast.BoolNode{Value: true}
		case "FALSE":
			return &ast.BoolNode{Value: false}
		}
		return r.fail(n, "unknown name %s (the names are changeSet and order)", n.Value)
	case *ast.UnaryNode:
		switch n.Operator {
		case "not", "!":
			n.Node = call(fnBool, r.node(n.Node, scope))
			n.Operator = "not"
			return n
		case "-":
			return call(fnNeg, r.node(n.Node, scope))
		case "+":
			return call(fnMath, str("+"), &ast.IntegerNode{Value: 0}, r.node(n.Node, scope))
		}
		return r.fail(n, "operator %s is not supported", n.Operator)
	case *ast.BinaryNode:
		return r.binary(n, scope)
	case *ast.MemberNode:
		obj := r.node(n.Node, scope)
		if n.Optional {
			return r.fail(n, "operator ?. is not supported")
		}
		if p, ok := n.Property.(*ast.StringNode); ok && !n.Method {
			if isChangeSet(n.Node) {
				return r.fail(n, "changeSet has no property %s (%s)", p.Value, changeSetMethods)
			}
			return call(fnGet, obj, str(p.Value))
		}
		return call(fnIndex, obj, r.node(n.Property, scope))
	case *ast.CallNode:
		return r.call(n, scope)
	case *ast.BuiltinNode:
		switch n.Name {
		case "any", "all", "none":
		case "date": // an expr builtin too, but PipeLang's meaning
			return r.date(n, n.Arguments, scope)
		default:
			return r.fail(n, "function %s is not supported", n.Name)
		}
		if len(n.Arguments) != 2 {
			return r.fail(n, "%s needs a list and a condition", n.Name)
		}
		n.Arguments[0] = call(fnItems, r.node(n.Arguments[0], scope))
		pred, ok := n.Arguments[1].(*ast.PredicateNode)
		if !ok {
			return r.fail(n, "%s needs a condition", n.Name)
		}
		pred.Node = r.predicate(pred.Node, scope)
		return n
	case *ast.ConditionalNode:
		n.Cond = call(fnBool, r.node(n.Cond, scope))
		n.Exp1 = r.node(n.Exp1, scope)
		n.Exp2 = r.node(n.Exp2, scope)
		return n
	case *ast.ArrayNode:
		for i := range n.Nodes {
			n.Nodes[i] = r.node(n.Nodes[i], scope)
		}
		return n
	}
	return r.fail(n, "this form is not supported: %s", n.String())
}

// predicate rewrites a filter's body, `let item = #; BODY` as the token
// pass wrote it (or a body over # as expr writes it).
func (r *rewriter) predicate(n ast.Node, scope []string) ast.Node {
	if v, ok := n.(*ast.VariableDeclaratorNode); ok {
		if _, isPointer := v.Value.(*ast.PointerNode); isPointer {
			v.Expr = call(fnBool, r.node(v.Expr, append(scope[:len(scope):len(scope)], v.Name)))
			return v
		}
	}
	return call(fnBool, r.node(n, scope))
}

func (r *rewriter) binary(n *ast.BinaryNode, scope []string) ast.Node {
	if n.Operator == "==" || n.Operator == "!=" {
		r.noteFieldName(n.Left, n.Right)
		r.noteFieldName(n.Right, n.Left)
	}
	left, right := r.node(n.Left, scope), r.node(n.Right, scope)
	switch n.Operator {
	case "and", "&&", "or", "||":
		n.Left, n.Right = call(fnBool, left), call(fnBool, right)
		return n
	case "==":
		return call(fnEq, left, right)
	case "!=":
		return &ast.UnaryNode{Operator: "not", Node: call(fnEq, left, right)}
	case "<", ">", "<=", ">=":
		return call(fnCmp, str(n.Operator), left, right)
	case "in":
		return call(fnIn, left, right)
	case "matches":
		if p, ok := n.Right.(*ast.StringNode); ok {
			re, err := pcre(p.Value)
			if err != nil {
				return r.fail(n.Right, "%v", err)
			}
			return call(fnMatch, left, &ast.ConstantNode{Value: re})
		}
		return call(fnMatch, left, right)
	case "+", "-", "*", "/", "%", "**":
		return call(fnMath, str(n.Operator), left, right)
	}
	return r.fail(n, "operator %s is not supported", n.Operator)
}

// call rewrites f(args) (only date) and x.method(args).
func (r *rewriter) call(n *ast.CallNode, scope []string) ast.Node {
	args := make([]ast.Node, 0, len(n.Arguments)+2)
	switch c := n.Callee.(type) {
	case *ast.IdentifierNode:
		if c.Value != "date" {
			return r.fail(n, "unknown function %s", c.Value)
		}
		return r.date(n, n.Arguments, scope)
	case *ast.MemberNode:
		p, ok := c.Property.(*ast.StringNode)
		if !ok || c.Optional {
			break
		}
		if isChangeSet(c.Node) {
			if want, ok := changeSetArity[p.Value]; !ok {
				return r.fail(n, "changeSet has no method %s (%s)", p.Value, changeSetMethods)
			} else if len(n.Arguments) != want {
				return r.fail(n, "%s takes %s", p.Value, map[int]string{0: "no arguments", 1: "one argument, a field name"}[want])
			}
		}
		r.noteField(p.Value, n.Arguments)
		args = append(args, r.node(c.Node, scope), str(p.Value))
		for _, a := range n.Arguments {
			args = append(args, r.node(a, scope))
		}
		return call(fnCall, args...)
	}
	return r.fail(n, "this call is not supported: %s", n.String())
}

// changeSetArity are changeSet's methods and their argument counts.
var changeSetArity = map[string]int{
	"isCreate": 0, "isUpdate": 0, "isDelete": 0,
	"hasChangedField": 1, "newValue": 1, "oldValue": 1, "getNewValue": 1, "getOldValue": 1,
}

const changeSetMethods = "its methods: hasChangedField, newValue, oldValue, getNewValue, getOldValue, isCreate, isUpdate, isDelete"

// isChangeSet tells the variable changeSet itself, whose methods are known
// when the expression is compiled.
func isChangeSet(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == "changeSet"
}

// date is date("01.01.2000"); a literal date is checked here.
func (r *rewriter) date(n ast.Node, args []ast.Node, scope []string) ast.Node {
	if len(args) != 1 {
		return r.fail(n, "date needs one argument, a date")
	}
	if s, ok := args[0].(*ast.StringNode); ok {
		if _, err := parseDate(s.Value); err != nil {
			return r.fail(s, "%v", err)
		}
	}
	return call(fnDate, r.node(args[0], scope))
}

// noteFieldName records the field name compared with a filter item's
// fieldName, as in item.fieldName == "payments.status".
func (r *rewriter) noteFieldName(member, literal ast.Node) {
	m, ok := member.(*ast.MemberNode)
	if !ok {
		return
	}
	if p, ok := m.Property.(*ast.StringNode); ok && p.Value == "fieldName" {
		r.noteField("newValue", []ast.Node{literal})
	}
}

// noteField records a history field name, given as a literal to one of
// the change set's methods, that is not a field of the order history.
func (r *rewriter) noteField(method string, args []ast.Node) {
	switch method {
	case "hasChangedField", "newValue", "oldValue", "getNewValue", "getOldValue":
	default:
		return
	}
	if len(args) != 1 {
		return
	}
	if s, ok := args[0].(*ast.StringNode); ok && !isHistoryField(s.Value) {
		for _, u := range r.unknown {
			if u == s.Value {
				return
			}
		}
		r.unknown = append(r.unknown, s.Value)
	}
}
