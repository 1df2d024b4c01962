package config

import (
	"encoding/json"
	"net"
	"net/mail"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
)

// A rule is what the builder checks of a key's value beyond its type,
// written once as data: checkValues applies it to every value written in
// the file, and Schema turns it into JSON Schema keywords, so `poller check`
// and the schema cannot drift apart. A raw field names its rule in its
// check tag: a name of the rules table, or a kind with arguments
// (range=1,64; min=0). A new key gets its type's schema without a tag, and
// the schema of any rule it names.
type rule interface {
	// check reports what is wrong with a value written in the file (set,
	// and decoded without error); the message quotes it as written.
	check(b *builder, f view)
	// schema is the JSON Schema of the values check accepts, for a key whose
	// Go value type is t; a ${VAR} value is admitted beside it.
	schema(t reflect.Type) *jsonschema.Schema
}

// objectRule is a rule that also constrains the mapping holding its key:
// alternatives (api_key or api_key_file) and conditions (body with format:
// template).
type objectRule interface {
	object(parent *jsonschema.Schema, key string)
}

// view is a set field as rules see it: its decoded value and where it was
// written.
type view struct {
	v    reflect.Value // field[T].V
	raw  string
	key  string
	line int
	// invalid: a list with an item decoding refused, or not a list at
	// all; its items are checked, the list as a whole is not.
	invalid bool
}

// bad reports a problem with the value at the place it was written.
func (f view) bad(b *builder, format string, args ...any) {
	if !f.invalid {
		b.errorf(f.line, f.key, format, args...)
	}
}

// quoted is what a message shows of the value: the text as written.
func (f view) quoted() string { return strconv.Quote(f.raw) }

// The closed sets the code also branches on.
var (
	logLevels  = choice{values: []string{"debug", "info", "warn", "error"}}
	logFormats = choice{values: []string{"text", "json"}}
	methods    = choice{values: []string{"POST", "GET"}, fold: true}
	formats    = choice{values: []string{"json", "form", "query", "template"}}
)

// Rules of more than one key.
var (
	emailAddress = textRule{re: emailPattern, msg: "not an e-mail address: %s", valid: validEmail}
	code         = textRule{re: codePattern, msg: "not a code: %s"} // a status or site code
)

// rules are the named rules of check tags.
var rules = map[string]rule{
	"level":            logLevels,
	"log_format":       logFormats,
	"method":           methods,
	"format":           formatRule{formats},
	"duration":         durationRule{},
	"duration_or_zero": durationRule{zeroOK: true},
	"nonempty":         textRule{re: regexp.MustCompile(`.`), msg: "must not be empty", plain: true},
	"name":             textRule{re: namePattern, msg: "must match [a-z0-9_-]+, got %s"},
	"start_from":       textRule{re: startFromPattern, msg: "must be now, beginning or an RFC 3339 time, got %s", valid: validStartFrom},
	"listen":           textRule{re: listenPattern, msg: `must be host:port ("" disables), got %s`, valid: validListen},
	"hostport":         textRule{re: hostPortPattern, msg: "must be host:port, got %s", valid: validHostPort},
	"socket":           socketRule{},
	"email":            emailAddress,
	"recipients":       listRule{item: emailAddress, min: 1, none: "at least one recipient is required"},
	"statuses":         listRule{item: code, min: 1, unique: true, none: "must list at least one code"},
	"sites":            listRule{item: code, unique: true, null: true},
	"url":              urlRule{},
	"base_url":         urlRule{base: true},
	"api_key":          secretRule{required: true},
	"secret":           secretRule{},
	"signing_secret":   secretRule{pattern: signingSecretPattern},
	"username":         userRule{secret: "password"},
	"webhooks":         webhooksRule{},
	"accounts":         minItemsRule{1},
	"params":           pairsRule{names: paramNamePattern},
	"headers":          pairsRule{names: headerNamePattern, notNames: reservedHeaderPattern, values: headerValuePattern},
}

// ruleOf parses a check tag; "" is no rule. A bad tag is a bug that every
// test loading a config catches.
func ruleOf(tag string) rule {
	if tag == "" {
		return nil
	}
	if r, ok := rules[tag]; ok {
		return r
	}
	kind, args, _ := strings.Cut(tag, "=")
	parts := strings.SplitN(args, ",", 3)
	num := func(i int) float64 {
		if i >= len(parts) {
			panic("config: check tag " + tag + ": missing argument")
		}
		v, err := strconv.ParseFloat(parts[i], 64)
		if err != nil {
			panic("config: check tag " + tag + ": " + err.Error())
		}
		return v
	}
	switch kind {
	case "min":
		return rangeRule{lo: num(0), hasHi: false}
	case "range":
		r := rangeRule{lo: num(0), hi: num(1), hasHi: true}
		if len(parts) == 3 {
			r.unit = " " + parts[2]
		}
		return r
	}
	panic("config: unknown check tag " + tag)
}

// rangeRule: lo <= v (<= hi), for integers and numbers.
type rangeRule struct {
	lo, hi float64
	hasHi  bool
	unit   string // follows the bounds in the message
}

func (r rangeRule) check(b *builder, f view) {
	v := f.v.Convert(reflect.TypeFor[float64]()).Float()
	switch {
	case r.hasHi && (v < r.lo || v > r.hi):
		f.bad(b, "must be between %v and %v%s, got %s", r.lo, r.hi, r.unit, f.raw)
	case r.hasHi || v >= r.lo:
	case r.lo == 0:
		f.bad(b, "must not be negative, got %s", f.raw)
	default:
		f.bad(b, "must be at least %v, got %s", r.lo, f.raw)
	}
}

func (r rangeRule) schema(t reflect.Type) *jsonschema.Schema {
	s := &jsonschema.Schema{Type: "number", Minimum: number(r.lo)}
	if t.Kind() == reflect.Int {
		s.Type = "integer"
	}
	if r.hasHi {
		s.Maximum = number(r.hi)
	}
	return s
}

func number(v float64) json.Number { return json.Number(strconv.FormatFloat(v, 'f', -1, 64)) }

// choice: one of a closed set; with fold, compared in upper case (post is
// POST).
type choice struct {
	values []string
	fold   bool
}

// has reports whether v, as the builder holds it, is one of the choices.
func (c choice) has(v string) bool { return slices.Contains(c.values, v) }

func (c choice) check(b *builder, f view) {
	v := f.v.String()
	if c.fold {
		v = strings.ToUpper(v)
	}
	if !c.has(v) {
		f.bad(b, "must be %s or %s, got %s", strings.Join(c.values[:len(c.values)-1], ", "), c.values[len(c.values)-1], f.quoted())
	}
}

func (c choice) schema(reflect.Type) *jsonschema.Schema {
	if !c.fold {
		enum := make([]any, len(c.values))
		for i, v := range c.values {
			enum[i] = v
		}
		return &jsonschema.Schema{Enum: enum}
	}
	alts := make([]string, len(c.values))
	for i, v := range c.values {
		alts[i] = anyCase(v)
	}
	return &jsonschema.Schema{Type: "string", Pattern: "^(?:" + strings.Join(alts, "|") + ")$"}
}

// anyCase spells a regular expression matching s in any letter case
// (ECMA-262 patterns, which editors use, have no (?i)).
func anyCase(s string) string {
	var b strings.Builder
	for _, c := range s {
		lo, up := strings.ToLower(string(c)), strings.ToUpper(string(c))
		if lo == up {
			b.WriteString(regexp.QuoteMeta(string(c)))
			continue
		}
		b.WriteString("[" + up + lo + "]")
	}
	return b.String()
}

// durationRule: a Go duration, positive or, with zeroOK, 0 (off) too.
type durationRule struct{ zeroOK bool }

func (r durationRule) check(b *builder, f view) {
	d, err := time.ParseDuration(f.v.String())
	switch {
	case err != nil:
		f.bad(b, "bad duration %s (want e.g. 10s, 2m, 72h)", f.quoted())
	case d < 0 && r.zeroOK:
		f.bad(b, "must not be negative, got %s", f.raw)
	case d <= 0 && !r.zeroOK:
		f.bad(b, "must be positive, got %s", f.raw)
	}
}

// Go durations (time.ParseDuration): an optional sign, then one or more
// number-unit pairs; "0" needs no unit.
const (
	durUnit    = `(?:ns|us|µs|μs|ms|s|m|h)`
	durAny     = `(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)` + durUnit + `)`
	durNonZero = `(?:(?:[0-9]*[1-9][0-9]*(?:\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*)` + durUnit + `)`
	durZero    = `(?:(?:0+(?:\.0*)?|\.0+)` + durUnit + `)`
)

func (r durationRule) schema(reflect.Type) *jsonschema.Schema {
	positive := `\+?` + durAny + `*` + durNonZero + durAny + `*`
	if !r.zeroOK {
		return &jsonschema.Schema{Type: "string", Pattern: "^" + positive + "$"}
	}
	// 0 written as a YAML number is the text "0" too.
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
		{Type: "string", Pattern: `^(?:[-+]?0|` + positive + `|[-+]?` + durZero + `+)$`},
		{Const: 0},
	}}
}

// textRule: text matching re (and valid, when the regular expression is not
// the whole truth, e.g. a parse). plain: the message takes no value.
type textRule struct {
	re    *regexp.Regexp
	msg   string
	plain bool
	valid func(string) bool
}

func (r textRule) ok(s string) bool { return r.re.MatchString(s) && (r.valid == nil || r.valid(s)) }

func (r textRule) check(b *builder, f view) {
	if r.ok(f.v.String()) {
		return
	}
	if r.plain {
		f.bad(b, "%s", r.msg)
		return
	}
	f.bad(b, r.msg, f.quoted())
}

// schema admits a string matching the pattern, and YAML's numbers,
// booleans and null where their text would match (name: 2024, site: 1.5,
// listen: null for "").
func (r textRule) schema(reflect.Type) *jsonschema.Schema {
	alts := []*jsonschema.Schema{{Type: "string", Pattern: r.re.String()}}
	switch {
	case r.ok("12") && r.ok("-12") && r.ok("1.5") && r.ok("-1.5"):
		alts = append(alts, &jsonschema.Schema{Type: "number"})
	case r.ok("12") && r.ok("1.5"):
		alts = append(alts, &jsonschema.Schema{Type: "number", Minimum: "0"})
	case r.ok("12") && r.ok("-12"):
		alts = append(alts, &jsonschema.Schema{Type: "integer"})
	case r.ok("12"):
		alts = append(alts, &jsonschema.Schema{Type: "integer", Minimum: "0"})
	}
	if r.ok("true") && r.ok("false") {
		alts = append(alts, &jsonschema.Schema{Type: "boolean"})
	}
	if r.ok("") {
		alts = append(alts, &jsonschema.Schema{Type: "null"})
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return &jsonschema.Schema{AnyOf: alts}
}

var (
	namePattern = regexp.MustCompile(`^[a-z0-9_-]+$`) // account and webhook names
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	// start_from: now, beginning or an RFC 3339 time (validStartFrom
	// checks the calendar).
	startFromPattern = regexp.MustCompile(`^(?:now|beginning|[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]))$`)
	// host:port as net.SplitHostPort splits it: a bracketed or colon-free
	// host, a port without colons or brackets.
	listenPattern   = regexp.MustCompile(`^(?:|(?:\[[^\[\]]*\]|[^:\[\]]*):[^:\[\]]+)$`)
	hostPortPattern = regexp.MustCompile(`^(?:\[[^\[\]]+\]|[^:\[\]]+):[^:\[\]]+$`)
	// An address has an @; mail.ParseAddress checks the rest.
	emailPattern = regexp.MustCompile(`@`)
)

func validStartFrom(s string) bool {
	if s == "now" || s == "beginning" {
		return true
	}
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

func validListen(s string) bool {
	if s == "" {
		return true
	}
	_, port, err := net.SplitHostPort(s)
	return err == nil && port != ""
}

func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && host != "" && port != ""
}

func validEmail(s string) bool {
	_, err := mail.ParseAddress(s)
	return err == nil
}

// socketRule: a unix socket path fits sun_path.
type socketRule struct{}

func (socketRule) check(b *builder, f view) {
	if len(f.v.String()) > maxSocketPath {
		f.bad(b, "path longer than %d bytes cannot be a unix socket", maxSocketPath)
	}
}

func (socketRule) schema(reflect.Type) *jsonschema.Schema {
	n := uint64(maxSocketPath)
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "string", MaxLength: &n}, {Type: "number"}, {Type: "boolean"}, {Type: "null"}}}
}

// listRule: a list of text values, each checked by item; at least min of
// them; unique refuses repeats; null admits a null list (no values).
type listRule struct {
	item   textRule
	min    int
	unique bool
	null   bool
	none   string // the message when there are fewer than min
}

func (r listRule) check(b *builder, f view) {
	items := f.v.Interface().([]field[string])
	if len(items) < r.min {
		f.bad(b, "%s", r.none)
	}
	var seen []string
	for _, it := range items {
		switch {
		case it.Invalid:
		case !r.item.ok(it.V):
			bad(b, it, r.item.msg, quoted(it))
		case r.unique && slices.Contains(seen, it.V):
			bad(b, it, "%s listed twice", quoted(it))
		}
		seen = append(seen, it.V)
	}
}

func (r listRule) schema(reflect.Type) *jsonschema.Schema {
	s := &jsonschema.Schema{Type: "array", Items: withVariable(r.item.schema(nil)), UniqueItems: r.unique}
	if r.min > 0 {
		n := uint64(r.min)
		s.MinItems = &n
	}
	if r.null {
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{s, {Type: "null"}}}
	}
	return s
}

// dur is a duration the rules checked: 0 when it did not parse.
func dur(f field[string]) time.Duration {
	d, _ := time.ParseDuration(f.V)
	return d
}
