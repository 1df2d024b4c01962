package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// decoder turns a yaml.Node tree into the raw structs of raw.go. yaml's own
// strict mode (Decoder.KnownFields) does not reach Node.Decode and reports
// neither the key path nor more than the first error, so the walk is done
// here: unknown and duplicate keys, ${VAR} expansion and type errors all get
// the file, line and key path, and every error is collected.
type decoder struct {
	file string
	data []byte // the file, for positions inside a value
	env  func(string) (string, bool)
	errs []*Error
}

// nodeDecoder is implemented by types that decode themselves (field[T],
// pairs) and so record where their value came from.
type nodeDecoder interface {
	decodeYAML(d *decoder, n *yaml.Node, key string)
}

// maxAliasDepth bounds alias chains. Cycles and fan-out, by aliases and
// merge keys alike, are refused before decoding (checkAliases).
const maxAliasDepth = 32

func (d *decoder) errorf(line int, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// value decodes n into v, which must be addressable.
func (d *decoder) value(v reflect.Value, n *yaml.Node, key string) {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if i == maxAliasDepth || n.Alias == nil {
			d.errorf(n.Line, key, "alias too deep")
			return
		}
		n = n.Alias
	}
	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		nd.decodeYAML(d, n, key)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(v, n, key)
	case reflect.Slice:
		d.sequence(v, n, key)
	case reflect.String:
		if s, ok := d.scalar(n, key); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		var b bool
		if d.typed(n, key, &b, "must be true or false") {
			v.SetBool(b)
		}
	case reflect.Int:
		var i int
		if d.typed(n, key, &i, "must be an integer") {
			v.SetInt(int64(i))
		}
	case reflect.Float64:
		var f float64
		if d.typed(n, key, &f, "must be a number") {
			v.SetFloat(f)
		}
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), key))
	}
}

// isNull reports an absent value (`key:`, `key: ~`, `key: null`).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// mapping decodes a YAML mapping into struct v by the fields' yaml tags;
// an anonymous struct field tagged ",inline" contributes its keys.
func (d *decoder) mapping(v reflect.Value, n *yaml.Node, key string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, key, "must be a mapping")
		return
	}
	fields := keyIndex(v.Type())
	for _, p := range d.pairs(n, key) {
		idx, ok := fields[p.name]
		if !ok {
			d.errorf(p.key.Line, join(key, p.name), "unknown key")
			continue
		}
		d.value(v.FieldByIndex(idx), p.value, join(key, p.name))
	}
}

// keyIndexes caches keyIndex: a file decodes the same few structs
// thousands of times.
var keyIndexes sync.Map // reflect.Type -> map[string][]int

// keyIndex maps a struct's YAML keys to its fields' index paths.
func keyIndex(t reflect.Type) map[string][]int {
	if m, ok := keyIndexes.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	var add func(t reflect.Type, prefix []int)
	add = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			idx := append(prefix[:len(prefix):len(prefix)], i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			switch {
			case opts == "inline":
				add(sf.Type, idx)
			case name != "" && name != "-":
				m[name] = idx
			}
		}
	}
	add(t, nil)
	keyIndexes.Store(t, m)
	return m
}

type pair struct {
	name       string
	key, value *yaml.Node
}

// pairs lists a mapping's entries, following YAML merge keys (<<: *anchor)
// whose entries count only where the mapping does not set the key itself. A
// key written twice is an error: yaml.v3 would keep the last one silently.
func (d *decoder) pairs(n *yaml.Node, key string) []pair {
	var out []pair
	seen := map[string]int{} // key -> line
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, key, "keys must be strings")
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, join(key, k.Value), "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{name: k.Value, key: k, value: v})
	}
	for _, m := range merges {
		for _, src := range mergeSources(m) {
			if src.Kind != yaml.MappingNode {
				d.errorf(m.Line, key, "<< must merge a mapping")
				continue
			}
			for _, p := range d.pairs(src, key) {
				if _, set := seen[p.name]; !set {
					seen[p.name] = p.key.Line
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// mergeSources resolves the value of a merge key: an alias or a list of them.
func mergeSources(m *yaml.Node) []*yaml.Node {
	nodes := []*yaml.Node{m}
	if m.Kind == yaml.SequenceNode {
		nodes = m.Content
	}
	out := make([]*yaml.Node, 0, len(nodes))
	for _, n := range nodes {
		for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasDepth; i++ {
			n = n.Alias
		}
		out = append(out, n)
	}
	return out
}

func (d *decoder) sequence(v reflect.Value, n *yaml.Node, key string) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, key, "must be a list")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(s.Index(i), item, fmt.Sprintf("%s[%d]", key, i))
	}
	v.Set(s)
}

// scalar returns a scalar's text with ${VAR} expanded; null reads as "".
func (d *decoder) scalar(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, key, "must be a single value, not a %s", kindName(n.Kind))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	s, err := expand(n.Value, d.env)
	if err != nil {
		msg := err.Error()
		if u, ok := errors.AsType[*unsetError](err); ok && u.name == credentialsVar {
			msg = fmt.Sprintf("%s (in %s): %s", msg, n.Value, credentialsHint(d.file, n.Value))
		}
		d.errorf(n.Line, key, "%s", msg)
		return "", false
	}
	return s, true
}

// typed decodes a non-string scalar after expansion. An expanded plain
// scalar is re-resolved (rate_limit: ${RATE} is a number once RATE=8). The
// message quotes the value as written.
func (d *decoder) typed(n *yaml.Node, key string, out any, msg string) bool {
	s, ok := d.scalar(n, key)
	if !ok {
		return false
	}
	if isNull(n) {
		d.errorf(n.Line, key, "%s", msg)
		return false
	}
	tmp := *n
	if s != n.Value {
		tmp.Value = s
		if tmp.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0 {
			tmp.Tag = ""
		}
	}
	_, wantInt := out.(*int)
	// yaml would truncate 1.5 to an int.
	if err := tmp.Decode(out); err != nil || wantInt && tmp.ShortTag() == "!!float" {
		d.errorf(n.Line, key, "%s, got %q", msg, n.Value)
		return false
	}
	return true
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// expand replaces ${NAME} with the variable's value; $$ is a literal $ and a
// $ before anything else stays as it is.
func expand(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unclosed ${ (write $$ for a literal $)")
			}
			name := s[i+2 : i+2+end]
			if !validEnvName(name) {
				return "", fmt.Errorf("invalid variable name %s", strconv.Quote(name))
			}
			val, ok := env(name)
			if !ok {
				return "", &unsetError{name}
			}
			b.WriteString(val)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// unsetError: ${NAME} names a variable the environment does not have.
type unsetError struct{ name string }

func (e *unsetError) Error() string { return "environment variable " + e.name + " is not set" }

// vars lists the variables a value as written expands, in order, by the
// same parsing as expand.
func vars(raw string) []string {
	var out []string
	_, _ = expand(raw, func(name string) (string, bool) { // nothing to fail: every name is "set"
		out = append(out, name)
		return "", true
	})
	return out
}

func validEnvName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
