package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
)

// condition compiles a webhook's when. A bad expression is reported at the
// file line of the mistake with its column in the expression (and in the
// file, when the value's position there can be told); a history field the
// order history does not have is a warning.
func (b *builder) condition(f field[string]) *condition.Condition {
	if !f.Set || f.Invalid {
		return nil
	}
	if strings.TrimSpace(f.V) == "" {
		bad(b, f, "must not be empty: leave out when to get the account's status events")
		return nil
	}
	c, err := condition.Compile(f.V)
	if ce, ok := errors.AsType[*condition.Error](err); ok {
		at := fmt.Sprintf("column %d of the expression", ce.Column)
		if strings.Contains(f.V, "\n") {
			at = fmt.Sprintf("line %d, column %d of the expression", ce.Line, ce.Column)
		}
		line := f.Line
		if l, col, found := valuePosition(b.data, f, ce.Line, ce.Column); found {
			line = l
			at += fmt.Sprintf(", column %d of line %d", col, l)
		}
		b.errorf(line, f.Key, "bad expression at %s: %s", at, ce.Msg)
		return nil
	}
	if err != nil {
		b.errorf(f.Line, f.Key, "bad expression: %v", err)
		return nil
	}
	for _, name := range c.UnknownFields() {
		b.warn(f.Line, f.Key, fmt.Sprintf("%q is not a field of the order history, so it never changes (custom fields are custom_<code>)", name))
	}
	return c
}

// warn records a warning once (a webhook in defaults: is built once per
// account), keeping them sorted by line.
func (b *builder) warn(line int, key, msg string) {
	w := &Error{File: b.file, Line: line, Key: key, Msg: msg}
	for _, o := range b.warnings {
		if *o == *w {
			return
		}
	}
	b.warnings = append(b.warnings, w)
	slices.SortStableFunc(b.warnings, func(x, y *Error) int { return cmp.Compare(x.Line, y.Line) })
}

// valuePosition finds in the file the character at line, col (1-based) of
// a scalar's value: it walks the value's characters and the file's from
// where the value starts, letting the file skip only what a YAML scalar
// adds around its text (quotes, escapes' backslashes, line breaks and
// indentation). found is false when the two do not line up: the value was
// expanded from ${VAR}, or an escape such as \n stands for another
// character.
func valuePosition(data []byte, f field[string], line, col int) (fileLine, fileCol int, found bool) {
	if f.V != f.Raw || f.Line < 1 || f.Column < 1 {
		return 0, 0, false
	}
	target := offsetOf(f.V, line, col)
	lines := bytes.SplitAfter(data, []byte("\n"))
	if f.Line > len(lines) {
		return 0, 0, false
	}
	// The file from the value's first character: after a block scalar's
	// header line, or after an opening quote.
	l, rest := f.Line, []rune(string(lines[f.Line-1]))
	if f.Column-1 > len(rest) {
		return 0, 0, false
	}
	c := f.Column
	rest = rest[f.Column-1:]
	if len(rest) > 0 && (rest[0] == '|' || rest[0] == '>') {
		l, c, rest = l+1, 1, nil
		if l <= len(lines) {
			rest = []rune(string(lines[l-1]))
		}
	}
	next := func() (rune, bool) { // the file's next character, moving l and c
		for len(rest) == 0 {
			if l >= len(lines) {
				return 0, false
			}
			l, c, rest = l+1, 1, []rune(string(lines[l]))
		}
		r := rest[0]
		rest = rest[1:]
		c++
		return r, true
	}
	i := 0
	for _, want := range f.V {
		for {
			r, ok := next()
			if !ok {
				return 0, 0, false
			}
			if r == want || r == '\n' && want == ' ' { // a folded line break
				break
			}
			if !strings.ContainsRune(" \t\r\n'\"\\", r) {
				return 0, 0, false
			}
		}
		if i == target {
			return l, c - 1, true
		}
		i++
	}
	if i == target { // just past the end of the value
		return l, c, true
	}
	return 0, 0, false
}

// offsetOf is the character offset in s of line, col (1-based).
func offsetOf(s string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		off += utf8.RuneCountInString(s[:i+1])
		s = s[i+1:]
	}
	return off + col - 1
}
