package condition

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
)

// functions are the functions the rewritten tree calls.
func functions() map[string]*builtin.Function {
	cfg := conf.CreateNew()
	for _, o := range []expr.Option{
		expr.Function(fnBool, func(a ...any) (any, error) { return truthy(a[0]), nil }),
		expr.Function(fnEq, func(a ...any) (any, error) { return equal(a[0], a[1]), nil }),
		expr.Function(fnCmp, func(a ...any) (any, error) { return compare(a[0].(string), a[1], a[2]) }),
		expr.Function(fnIn, func(a ...any) (any, error) { return in(a[0], a[1]) }),
		expr.Function(fnMatch, func(a ...any) (any, error) { return match(a[0], a[1]) }),
		expr.Function(fnMath, func(a ...any) (any, error) { return arith(a[0].(string), a[1], a[2]) }),
		expr.Function(fnNeg, func(a ...any) (any, error) { return arith("-", 0.0, a[0]) }),
		expr.Function(fnGet, func(a ...any) (any, error) { return get(a[0], a[1].(string)) }),
		expr.Function(fnIndex, func(a ...any) (any, error) { return index(a[0], a[1]) }),
		expr.Function(fnCall, func(a ...any) (any, error) { return callMethod(a[0], a[1].(string), a[2:]) }),
		expr.Function(fnItems, func(a ...any) (any, error) { return items(a[0]) }),
		expr.Function(fnDate, func(a ...any) (any, error) { return date(a[0]) }),
	} {
		o(cfg)
	}
	return cfg.Functions
}

// typeName names a value's type in messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, int:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	case *ref:
		return "reference"
	case time.Time:
		return "date"
	case *changeSet:
		return "changeSet"
	case *change:
		return "change"
	case *orderObject:
		return "order"
	}
	return fmt.Sprintf("%T", v)
}

// truthy is PHP's conversion to boolean, which PipeLang's and, or, not
// and conditions use: null, false, 0, "", "0" and empty lists are false.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0
	case int:
		return v != 0
	case string:
		return v != "" && v != "0"
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// number reads a number, or a string that is entirely a number (PHP's
// numeric string, as RetailCRM sometimes sends numbers).
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// equal is PHP 8's loose ==, which PipeLang's == is, with a reference
// equal to its code: a status object equals "new" when its code is "new".
func equal(a, b any) bool {
	if r, ok := a.(*ref); ok {
		a = r.code
	}
	if r, ok := b.(*ref); ok {
		b = r.code
	}
	switch {
	case a == nil && b == nil:
		return true
	case a == nil || b == nil:
		other := a
		if a == nil {
			other = b
		}
		if s, ok := other.(string); ok {
			return s == "" // null == "0" is false in PHP
		}
		return !truthy(other)
	}
	if ab, ok := a.(bool); ok {
		return ab == truthy(b)
	}
	if bb, ok := b.(bool); ok {
		return bb == truthy(a)
	}
	if t, ok := a.(time.Time); ok {
		u, ok := asDate(b)
		return ok && t.Equal(u)
	}
	if t, ok := b.(time.Time); ok {
		u, ok := asDate(a)
		return ok && t.Equal(u)
	}
	as, aStr := a.(string)
	bs, bStr := b.(string)
	if aStr && bStr {
		x, xOK := number(as)
		y, yOK := number(bs)
		if xOK && yOK {
			return x == y
		}
		return as == bs
	}
	if x, ok := number(a); ok {
		if y, ok := number(b); ok {
			return x == y
		}
	}
	la, aList := a.([]any)
	lb, bList := b.([]any)
	if aList && bList {
		if len(la) != len(lb) {
			return false
		}
		for i := range la {
			if !equal(la[i], lb[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// compare is <, >, <= and >= over numbers, strings and dates.
func compare(op string, a, b any) (bool, error) {
	if r, ok := a.(*ref); ok {
		a = r.code
	}
	if r, ok := b.(*ref); ok {
		b = r.code
	}
	var c int
	ta, aDate := a.(time.Time)
	tb, bDate := b.(time.Time)
	switch {
	case aDate || bDate:
		var ok bool
		if !aDate {
			ta, ok = asDate(a)
		} else if !bDate {
			tb, ok = asDate(b)
		} else {
			ok = true
		}
		if !ok {
			return false, fmt.Errorf("cannot compare a %s with a %s", typeName(a), typeName(b))
		}
		c = ta.Compare(tb)
	default:
		x, xOK := number(a)
		y, yOK := number(b)
		as, aStr := a.(string)
		bs, bStr := b.(string)
		switch {
		case xOK && yOK:
			c = cmpFloat(x, y)
		case aStr && bStr:
			c = strings.Compare(as, bs)
		default:
			return false, fmt.Errorf("cannot compare a %s with a %s", typeName(a), typeName(b))
		}
	}
	switch op {
	case "<":
		return c < 0, nil
	case ">":
		return c > 0, nil
	case "<=":
		return c <= 0, nil
	}
	return c >= 0, nil
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// in is `a in list`.
func in(a, list any) (bool, error) {
	l, ok := list.([]any)
	if !ok {
		return false, fmt.Errorf("in needs a list on its right, not a %s", typeName(list))
	}
	for _, v := range l {
		if equal(a, v) {
			return true, nil
		}
	}
	return false, nil
}

// match is `s matches pattern`: a missing value is the empty string, as
// PHP's preg_match reads null.
func match(s, pattern any) (bool, error) {
	re, ok := pattern.(*regexp.Regexp)
	if !ok {
		p, isStr := pattern.(string)
		if !isStr {
			return false, fmt.Errorf("matches needs a pattern string, not a %s", typeName(pattern))
		}
		var err error
		if re, err = pcre(p); err != nil {
			return false, err
		}
	}
	switch v := s.(type) {
	case nil:
		return re.MatchString(""), nil
	case string:
		return re.MatchString(v), nil
	case float64:
		return re.MatchString(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case *ref:
		return re.MatchString(v.code), nil
	}
	return false, fmt.Errorf("matches needs a string on its left, not a %s", typeName(s))
}

// pcre compiles a PCRE pattern as PipeLang writes it, "/yandex/i": the
// delimiters and the flags i, m, s, u and U are read; a pattern without
// delimiters is taken as it is.
func pcre(p string) (*regexp.Regexp, error) {
	body, flags := p, ""
	if len(p) >= 2 {
		open := p[0]
		closeDelim := map[byte]byte{'(': ')', '{': '}', '[': ']', '<': '>'}[open]
		if closeDelim == 0 {
			closeDelim = open
		}
		isDelim := !(open >= 'a' && open <= 'z' || open >= 'A' && open <= 'Z' || open >= '0' && open <= '9' || open == '\\' || open == ' ' || open >= 0x80)
		if i := strings.LastIndexByte(p, closeDelim); isDelim && i > 0 {
			body, flags = p[1:i], p[i+1:]
		}
	}
	var goFlags strings.Builder
	for _, f := range flags {
		switch f {
		case 'i', 'm', 's', 'U':
			goFlags.WriteRune(f)
		case 'u': // Go's regexps are UTF-8 already
		default:
			return nil, fmt.Errorf("pattern %q: flag %q is not supported", p, f)
		}
	}
	if goFlags.Len() > 0 {
		body = "(?" + goFlags.String() + ")" + body
	}
	re, err := regexp.Compile(body)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, errors.Unwrap(err))
	}
	return re, nil
}

// arith is + - * / % and ** over numbers.
func arith(op string, a, b any) (any, error) {
	x, xOK := number(a)
	y, yOK := number(b)
	if !xOK || !yOK {
		return nil, fmt.Errorf("%s needs numbers, not a %s and a %s", op, typeName(a), typeName(b))
	}
	switch op {
	case "+":
		return x + y, nil
	case "-":
		return x - y, nil
	case "*":
		return x * y, nil
	case "/":
		if y == 0 {
			return nil, errors.New("division by zero")
		}
		return x / y, nil
	case "%":
		if int64(y) == 0 {
			return nil, errors.New("modulo by zero")
		}
		return float64(int64(x) % int64(y)), nil
	}
	return math.Pow(x, y), nil
}

// index is x[i].
func index(x, i any) (any, error) {
	switch x := x.(type) {
	case []any:
		f, ok := number(i)
		if !ok || f != math.Trunc(f) || f < 0 || f >= float64(len(x)) {
			return nil, nil
		}
		return (*Env)(nil).wrap(x[int(f)], ""), nil
	case map[string]any:
		if s, ok := i.(string); ok {
			return (*Env)(nil).wrap(x[s], ""), nil
		}
		if f, ok := number(i); ok {
			return (*Env)(nil).wrap(x[strconv.FormatFloat(f, 'f', -1, 64)], ""), nil
		}
		return nil, nil
	case *orderObject, *ref:
		if s, ok := i.(string); ok {
			return get(x, s)
		}
	}
	return nil, fmt.Errorf("cannot index a %s with a %s", typeName(x), typeName(i))
}

// items is the list a filter runs over: the change set's entries, a list,
// or an object's values (the order's payments are keyed by id).
func items(x any) (any, error) {
	switch x := x.(type) {
	case *changeSet:
		return x.list(), nil
	case []any:
		return x, nil
	case map[string]any:
		return sortedValues(x), nil
	}
	return nil, fmt.Errorf("a filter needs a list, not a %s", typeName(x))
}

// dateLayouts are the date forms date() reads, day first as RetailCRM's
// documentation writes them, and as the API writes them.
var dateLayouts = []string{
	"02.01.2006", "02.01.2006 15:04", "02.01.2006 15:04:05",
	"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", time.RFC3339,
}

// parseDate reads a date as wall-clock time (RetailCRM writes dates in the
// account's time zone, without one).
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q: expected DD.MM.YYYY or YYYY-MM-DD, optionally with a time HH:MM[:SS]", s)
}

func date(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("date needs a string, not a %s", typeName(v))
	}
	return parseDate(s)
}

// asDate reads a value compared with a date.
func asDate(v any) (time.Time, bool) {
	switch v := v.(type) {
	case time.Time:
		return v, true
	case string:
		t, err := parseDate(v)
		return t, err == nil
	}
	return time.Time{}, false
}
