// Package condition is the language of a webhook's `when`: the part of
// RetailCRM's trigger-condition language (PipeLang) that its documentation
// uses, over one change set of an order's history and the order itself.
//
// An expression is parsed by expr (github.com/expr-lang/expr) once, at
// config load, after a small token-level pass for the two forms expr's
// grammar lacks (the `item => ...` closure of a filter and PHP's `===`);
// every operator, member access and method call is then rewritten into a
// call of this package's own functions, so that the meaning is PipeLang's
// (PHP's loose comparisons, getters, reference objects with a code, a
// status's group) rather than Go's, and so that a value of the wrong type
// is an error for that change set, never a panic.
package condition

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// Error is a compile error at a position in the expression's source.
type Error struct {
	Line, Column int // 1-based, within the expression; columns count characters
	Msg          string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg) }

// The errors of Eval and EvalEnv, compared with errors.Is.
var (
	// ErrEval wraps every run-time failure of Eval (a value of the wrong
	// type, a missing value): the expression cannot be decided for that
	// change set.
	ErrEval = errors.New("condition")
	// ErrNeedsOrder is EvalEnv's error over an Env from NewEnvWithoutOrder
	// when the evaluation reached the order's content: the expression is
	// decided only with the order (evaluate it again over NewEnv). Any other
	// outcome over such an Env, a verdict or ErrEval, is the one NewEnv
	// gives with every order, as evaluation is deterministic and stops at
	// the first read of the order.
	ErrNeedsOrder = errors.New("condition: needs the order")
)

// Refs resolves the reference data the language exposes; the daemon caches
// the statuses reference.
type Refs interface {
	// StatusGroup returns the code of the group of the status with this code.
	StatusGroup(code string) (group string, ok bool)
}

// Condition is a compiled expression; it is safe for concurrent use.
type Condition struct {
	src     string
	program *vm.Program
	unknown []string
}

// Compile compiles a webhook's `when` expression once, at config load.
// Its errors are *Error.
func Compile(src string) (*Condition, error) {
	c, err := compile(src)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Eval reports whether the expression holds for one change set: the
// history entries of one order written by one save (ascending ids), and the
// full order as GET /api/v5/orders returned it (nil or empty when the API
// no longer returns it: the entries' order objects stand in for it).
func (c *Condition) Eval(set []retailcrm.HistoryEntry, order json.RawMessage, refs Refs) (bool, error) {
	return c.EvalEnv(NewEnv(set, order, refs))
}

// EvalEnv is Eval over an Env built once per change set, so that several
// webhooks' conditions share its decoded order and field index. Over an
// Env without the order it returns ErrNeedsOrder when the verdict depends
// on the order.
func (c *Condition) EvalEnv(env *Env) (ok bool, err error) {
	defer func() {
		// expr recovers its own panics; this guards the functions of this
		// package, so that one odd change set never stops an account.
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("%w: %v", ErrEval, r)
		}
	}()
	m := machines.Get().(*vm.VM)
	out, err := m.Run(c.program, env.vars())
	machines.Put(m)
	if errors.Is(err, ErrNeedsOrder) { // vm.Run wraps what a function returned
		return false, ErrNeedsOrder
	}
	if err != nil {
		return false, fmt.Errorf("%w: %s", ErrEval, runtimeMessage(err))
	}
	b, _ := out.(bool) // the tree's root is _bool(...)
	return b, nil
}

// machines are expr's virtual machines, reused between evaluations: a
// tick evaluates each condition once per change set, tens of thousands of
// times, and a new machine allocates its stack each time.
var machines = sync.Pool{New: func() any { return new(vm.VM) }}

// UnknownFields returns the history field names the expression uses that
// are not fields of RetailCRM's order history (a warning: a typo never
// matches), in the order they appear.
func (c *Condition) UnknownFields() []string { return append([]string(nil), c.unknown...) }

// String returns the source as written.
func (c *Condition) String() string { return c.src }

// runtimeMessage keeps the message of an expr run-time error without its
// source snippet.
func runtimeMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}
