package tmpl

import (
	"fmt"
	"strings"
)

// parser is a hand-written scanner over src; pos is a byte offset.
type parser struct {
	src string
	pos int
}

func (p *parser) errAt(off int, format string, args ...any) error {
	line, col := 1, off+1
	if i := strings.LastIndexByte(p.src[:off], '\n'); i >= 0 {
		line = strings.Count(p.src[:off], "\n") + 1
		col = off - i
	}
	return &SyntaxError{Offset: off, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse() ([]part, error) {
	var parts []part
	for {
		i := strings.Index(p.src[p.pos:], "{{")
		if i < 0 {
			parts = appendText(parts, p.src[p.pos:])
			return parts, nil
		}
		open := p.pos + i
		text := p.src[p.pos:open]
		p.pos = open + 2
		if p.peek() == '-' {
			p.pos++
			text = strings.TrimRight(text, " \t\r\n")
		}
		parts = appendText(parts, text)
		e, trimAfter, err := p.tag(open)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part{expr: e})
		if trimAfter {
			rest := strings.TrimLeft(p.src[p.pos:], " \t\r\n")
			p.pos = len(p.src) - len(rest)
		}
	}
}

func appendText(parts []part, s string) []part {
	if s == "" {
		return parts
	}
	return append(parts, part{text: s})
}

// tag parses an expression after "{{" up to and including "}}".
func (p *parser) tag(open int) (*expr, bool, error) {
	p.space()
	if p.pos >= len(p.src) {
		return nil, false, p.errAt(open, "unclosed {{")
	}
	if p.closing() {
		return nil, false, p.errAt(open, "empty expression")
	}
	e := &expr{}
	switch c := p.peek(); {
	case c == '\'' || c == '"':
		s, err := p.str()
		if err != nil {
			return nil, false, err
		}
		e.literal = s
	case isIdentStart(c) || isDigit(c):
		path, err := p.path()
		if err != nil {
			return nil, false, err
		}
		e.path = path
	default:
		return nil, false, p.errAt(p.pos, "unexpected %q", c)
	}
	for {
		p.space()
		if p.pos >= len(p.src) {
			return nil, false, p.errAt(open, "unclosed {{")
		}
		if p.peek() != '|' {
			break
		}
		p.pos++
		p.space()
		f, err := p.filter()
		if err != nil {
			return nil, false, err
		}
		e.filters = append(e.filters, f)
	}
	trim := false
	if strings.HasPrefix(p.src[p.pos:], "-}}") {
		trim = true
		p.pos++
	}
	if !strings.HasPrefix(p.src[p.pos:], "}}") {
		if !strings.Contains(p.src[p.pos:], "}}") {
			return nil, false, p.errAt(open, "unclosed {{")
		}
		return nil, false, p.errAt(p.pos, "unexpected %q, want }}", p.src[p.pos])
	}
	p.pos += 2
	return e, trim, nil
}

// path parses a.b.0.c, a[0] and a['key'].
func (p *parser) path() ([]string, error) {
	path := []string{p.ident()}
	for {
		switch p.peek() {
		case '.':
			p.pos++
			c := p.peek()
			if !isIdentStart(c) && !isDigit(c) {
				return nil, p.errAt(p.pos, "want a name after \".\"")
			}
			path = append(path, p.ident())
		case '[':
			p.pos++
			p.space()
			var seg string
			switch c := p.peek(); {
			case c == '\'' || c == '"':
				s, err := p.str()
				if err != nil {
					return nil, err
				}
				seg = s
			case isDigit(c):
				seg = p.ident()
			default:
				return nil, p.errAt(p.pos, "want an index or a quoted key after \"[\"")
			}
			p.space()
			if p.peek() != ']' {
				return nil, p.errAt(p.pos, "unclosed [")
			}
			p.pos++
			path = append(path, seg)
		default:
			return path, nil
		}
	}
}

func (p *parser) filter() (filter, error) {
	start := p.pos
	if !isIdentStart(p.peek()) {
		return filter{}, p.errAt(start, "want a filter name after \"|\"")
	}
	name := p.ident()
	switch name {
	case "json_encode", "raw":
		return filter{name: name}, nil
	case "default":
		p.space()
		if p.peek() != '(' {
			return filter{}, p.errAt(p.pos, "default needs an argument: default('x')")
		}
		p.pos++
		p.space()
		if c := p.peek(); c != '\'' && c != '"' {
			return filter{}, p.errAt(p.pos, "default's argument must be a quoted string")
		}
		arg, err := p.str()
		if err != nil {
			return filter{}, err
		}
		p.space()
		if p.peek() != ')' {
			return filter{}, p.errAt(p.pos, "unclosed (")
		}
		p.pos++
		return filter{name: name, arg: arg}, nil
	}
	return filter{}, p.errAt(start, "unknown filter %q", name)
}

// str parses a quoted string; a backslash escapes the next byte.
func (p *parser) str() (string, error) {
	start := p.pos
	q := p.src[p.pos]
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		p.pos++
		switch {
		case c == q:
			return b.String(), nil
		case c == '\\' && p.pos < len(p.src):
			b.WriteByte(p.src[p.pos])
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errAt(start, "unclosed string")
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && (isIdentStart(p.src[p.pos]) || isDigit(p.src[p.pos])) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) space() {
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *parser) closing() bool {
	rest := p.src[p.pos:]
	return strings.HasPrefix(rest, "}}") || strings.HasPrefix(rest, "-}}")
}

// peek returns the current byte, or 0 at the end.
func (p *parser) peek() byte {
	if p.pos >= len(p.src) {
		return 0
	}
	return p.src[p.pos]
}

func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
