package condition

import (
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"
)

// filters maps PipeLang's filters over a list onto expr's predicates.
var filters = map[string]string{
	"contains": "any",
	"every":    "all",
	"any":      "any",
	"all":      "all",
	"none":     "none",
}

// edit is one replacement of the token pass, in runes of the source.
type edit struct {
	from, to int    // the replaced span of the original
	text     string // what replaces it
}

// source is an expression after the token pass, with what maps positions
// in it back to the original.
type source struct {
	orig  []rune
	text  string
	edits []edit // ascending, not overlapping
}

// prepare rewrites the forms of PipeLang that expr's grammar lacks:
//
//	LIST | contains(item => BODY)  ->  any(LIST, {let item = #; BODY})
//
// (and every/any/none likewise), and reports `===` and `!==`, which this
// language does not have, at their position. LIST is the operand just
// before the `|` (a name with its members, calls and indexes), since a
// PipeLang filter binds tighter than any operator, where expr's `|` binds
// looser: `a and changeSet | contains(...)` filters changeSet, not
// `a and changeSet`. Other text is left as written, so expr reports every
// other error.
func prepare(src string) (*source, *Error) {
	s := &source{orig: []rune(src)}
	toks, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		// expr's parser reports the same error with its position.
		s.text = src
		return s, nil
	}
	for i := 0; i+1 < len(toks); i++ {
		t := toks[i]
		if t.Is(lexer.Operator, "==") || t.Is(lexer.Operator, "!=") {
			if n := toks[i+1]; n.Is(lexer.Operator, "=") && n.From == t.To {
				return nil, s.errorAt(t.From, "strict comparison "+t.Value+"= is not supported: use "+t.Value)
			}
		}
		if t.Is(lexer.Operator, "#") {
			return nil, s.errorAt(t.From, "# is not part of the language (RetailCRM's documentation uses it for notes): remove it and what follows")
		}
		if !t.Is(lexer.Operator, "|") {
			continue
		}
		if name := toks[i+1]; name.Kind == lexer.Identifier || name.Kind == lexer.Operator {
			if _, ok := filters[name.Value]; !ok {
				return nil, s.errorAt(name.From, "filter "+strconv.Quote(name.Value)+" is not supported: the filters are contains, every, any and none, as in LIST | contains(x => CONDITION)")
			}
		}
		if i+5 >= len(toks) {
			continue
		}
		name, open, param, eq, gt := toks[i+1], toks[i+2], toks[i+3], toks[i+4], toks[i+5]
		fn, ok := filters[name.Value]
		if !ok || (name.Kind != lexer.Identifier && name.Kind != lexer.Operator) || !open.Is(lexer.Bracket, "(") ||
			param.Kind != lexer.Identifier || !eq.Is(lexer.Operator, "=") || !gt.Is(lexer.Operator, ">") || gt.From != eq.To {
			continue
		}
		closing := matching(toks, i+2)
		start := operandStart(toks, i-1)
		if closing < 0 || start < 0 {
			continue // unbalanced, or no operand: expr's parser reports it
		}
		s.edits = append(s.edits,
			edit{toks[start].From, toks[start].From, fn + "("},
			edit{t.From, gt.To, ", {let " + param.Value + " = #;"},
			edit{toks[closing].From, toks[closing].From, "}"})
	}
	s.apply()
	return s, nil
}

// operandStart returns the index of the first token of the operand that
// ends at toks[end]: a name, literal or bracketed group, with the members
// (.name), calls and indexes that follow it; -1 if there is none.
func operandStart(toks []lexer.Token, end int) int {
	j := end
	for j >= 0 {
		t := toks[j]
		switch {
		case t.Is(lexer.Bracket, ")") || t.Is(lexer.Bracket, "]"):
			open := matchingBack(toks, j)
			if open < 0 {
				return -1
			}
			j = open
			if j > 0 && (toks[j-1].Kind == lexer.Identifier || toks[j-1].Is(lexer.Bracket, ")") || toks[j-1].Is(lexer.Bracket, "]")) {
				j-- // a call's callee, or what is indexed
				continue
			}
		case t.Kind == lexer.Identifier || t.Kind == lexer.String || t.Kind == lexer.Number:
		default:
			return -1
		}
		if j >= 2 && toks[j-1].Is(lexer.Operator, ".") {
			j -= 2 // a member: go on with what it belongs to
			continue
		}
		return j
	}
	return -1
}

// matchingBack returns the index of the bracket that opens toks[closing],
// or -1.
func matchingBack(toks []lexer.Token, closing int) int {
	return balance(toks, closing, -1, closers, openers)
}

// matching returns the index of the bracket that closes toks[open], or -1.
func matching(toks []lexer.Token, open int) int {
	return balance(toks, open, 1, openers, closers)
}

var openers, closers = []string{"(", "[", "{"}, []string{")", "]", "}"}

// balance walks toks from start by step (1 or -1), counting in brackets
// up and out brackets down, and returns the index where the count is back
// to zero, or -1.
func balance(toks []lexer.Token, start, step int, in, out []string) int {
	depth := 0
	for j := start; j >= 0 && j < len(toks); j += step {
		if toks[j].Kind != lexer.Bracket {
			continue
		}
		switch {
		case slices.Contains(in, toks[j].Value):
			depth++
		case slices.Contains(out, toks[j].Value):
			if depth--; depth == 0 {
				return j
			}
		}
	}
	return -1
}

func (s *source) apply() {
	sortEdits(s.edits)
	var b strings.Builder
	at := 0
	for _, e := range s.edits {
		b.WriteString(string(s.orig[at:e.from]))
		b.WriteString(e.text)
		at = e.to
	}
	b.WriteString(string(s.orig[at:]))
	s.text = b.String()
}

// sortEdits orders edits by position (insertion sort: there are few).
func sortEdits(es []edit) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].from < es[j-1].from; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// original maps a rune offset in the rewritten text to one in the
// original: a position inside a replacement maps to the replaced span's
// start.
func (s *source) original(pos int) int {
	shift := 0
	for _, e := range s.edits {
		start := e.from + shift // where the replacement starts in the text
		n := len([]rune(e.text))
		if pos < start {
			break
		}
		if pos < start+n {
			return e.from
		}
		shift += n - (e.to - e.from)
	}
	return min(max(pos-shift, 0), len(s.orig))
}

// errorAt is an *Error at a rune offset of the original source.
func (s *source) errorAt(pos int, msg string) *Error {
	line, col := 1, 1
	for _, r := range s.orig[:min(max(pos, 0), len(s.orig))] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &Error{Line: line, Column: col, Msg: msg}
}

// errorAtText is an *Error at a rune offset of the rewritten text.
func (s *source) errorAtText(pos int, msg string) *Error {
	return s.errorAt(s.original(pos), msg)
}
