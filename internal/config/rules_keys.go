package config

import (
	"reflect"
	"regexp"
	"strings"

	"github.com/invopop/jsonschema"
)

// The rules below constrain a key together with its neighbours. The builder
// checks most of them itself (it needs files, or builds what it checks);
// their check reports only what a value alone shows.

// urlRule: an http(s) URL with a host; a base URL has no query, fragment
// or user info, and does not end in the API path (/api, /api/v5). The builder's url checks it (and parses it: the pattern
// is the part of that a schema can say).
type urlRule struct{ base bool }

func (urlRule) check(*builder, view) {}

func (r urlRule) schema(reflect.Type) *jsonschema.Schema {
	if r.base {
		return &jsonschema.Schema{Type: "string", Pattern: `^` + anyCase("http") + `[Ss]?://[^/?#@]+(?:/[^?#]*)?\??#?$`,
			Not: &jsonschema.Schema{Pattern: `/` + anyCase("api") + `(?:/[Vv]5)?/*\??#?$`}}
	}
	return &jsonschema.Schema{Type: "string", Pattern: `^` + anyCase("http") + `[Ss]?://[^/?#]+(?:[/?#].*)?$`}
}

// secretRule: a secret given inline (key) or in a file (key_file), never
// both; required: one of them must be. The builder resolves it (secret),
// reading the file; pattern constrains the inline value.
type secretRule struct {
	required bool
	pattern  *regexp.Regexp
}

func (secretRule) check(*builder, view) {}

func (r secretRule) schema(reflect.Type) *jsonschema.Schema {
	switch {
	case r.pattern != nil:
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "string", Pattern: r.pattern.String()}, {Type: "null"}}}
	case r.required:
		return nonEmptyText()
	}
	return &jsonschema.Schema{Ref: "#/$defs/text"}
}

func (r secretRule) object(parent *jsonschema.Schema, key string) {
	file := key + "_file"
	if fs, ok := parent.Properties.Get(file); ok {
		parent.Properties.Set(file, described(nonEmptyText(), fs.Description))
	}
	parent.AllOf = append(parent.AllOf, &jsonschema.Schema{Not: &jsonschema.Schema{Required: []string{key, file}}})
	if r.required {
		parent.AllOf = append(parent.AllOf, &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Required: []string{key}}, {Required: []string{file}}}})
	}
}

// userRule: a user name and its secret (password or password_file) go
// together. The builder's email checks it.
type userRule struct{ secret string }

func (userRule) check(*builder, view) {}

func (userRule) schema(reflect.Type) *jsonschema.Schema {
	return &jsonschema.Schema{Ref: "#/$defs/text"}
}

func (r userRule) object(parent *jsonschema.Schema, key string) {
	user := present(key)
	secret := &jsonschema.Schema{AnyOf: []*jsonschema.Schema{present(r.secret), {Required: []string{r.secret + "_file"}}}}
	parent.AllOf = append(parent.AllOf,
		&jsonschema.Schema{If: user, Then: secret},
		&jsonschema.Schema{If: secret, Then: user})
}

// present: key is set to a non-empty value.
func present(key string) *jsonschema.Schema {
	return withProp(&jsonschema.Schema{Required: []string{key}}, key, nonEmptyText())
}

// webhooksRule: at least one webhook, each named when there are several,
// names unique (the name keys its queue in the state file).
type webhooksRule struct{}

func (webhooksRule) check(b *builder, f view) {
	list := f.v.Interface().([]field[rawWebhook])
	if len(list) == 0 {
		f.bad(b, "at least one webhook is required")
	}
	b.webhookNames(list)
}

// webhookNames: several webhooks each need a unique name; a lone one is
// "1" (applyDefaults).
func (b *builder) webhookNames(list []field[rawWebhook]) {
	if len(list) < 2 {
		return
	}
	names := map[string]int{}
	for _, rw := range list {
		name := rw.V.Name
		first, dup := names[name.V]
		switch {
		case !name.Set:
			// Identity by position would send a queue to another URL
			// once the list is reordered.
			b.errorf(rw.Line, rw.Key+".name", "required when an account has more than one webhook (the name keys its queue of events)")
		case dup:
			bad(b, name, "duplicate webhook name %s (first at line %d)", quoted(name), first)
		default:
			names[name.V] = name.Line
		}
	}
}

func (webhooksRule) schema(reflect.Type) *jsonschema.Schema {
	one := uint64(1)
	return &jsonschema.Schema{Type: "array", MinItems: &one, Items: &jsonschema.Schema{Ref: "#/$defs/webhook"}}
}

func (webhooksRule) object(parent *jsonschema.Schema, key string) {
	two := uint64(2)
	parent.AllOf = append(parent.AllOf, &jsonschema.Schema{
		If:   withProp(&jsonschema.Schema{Required: []string{key}}, key, &jsonschema.Schema{Type: "array", MinItems: &two}),
		Then: withProp(&jsonschema.Schema{}, key, &jsonschema.Schema{Items: &jsonschema.Schema{Required: []string{"name"}}}),
	})
}

// minItemsRule: a list of at least n items (accounts); the builder checks it.
type minItemsRule struct{ n uint64 }

func (minItemsRule) check(*builder, view) {}

func (r minItemsRule) schema(t reflect.Type) *jsonschema.Schema {
	n := r.n
	elem := t.Elem().Field(0).Type // field[X] -> X
	return &jsonschema.Schema{Type: "array", MinItems: &n, Items: &jsonschema.Schema{Ref: "#/$defs/" + schemaName(elem)}}
}

// formatUse is what goes with each webhook format: a body template, params,
// the GET method. The builder's formatRules and the schema both read it.
var formatUse = map[string]struct{ body, params, get bool }{
	"json":     {params: true},
	"form":     {params: true},
	"query":    {params: true, get: true},
	"template": {body: true},
}

// formatRule is formats, with what goes with each of them.
type formatRule struct{ choice }

func (r formatRule) object(parent *jsonschema.Schema, key string) {
	_, _, builtin := builtins()
	for _, f := range r.values {
		use := formatUse[f]
		is := withProp(&jsonschema.Schema{Required: []string{key}}, key, &jsonschema.Schema{Const: f})
		if f == builtin.Format.V {
			is = &jsonschema.Schema{AnyOf: []*jsonschema.Schema{is, {Not: &jsonschema.Schema{Required: []string{key}}}}}
		}
		then := withProp(&jsonschema.Schema{}, "body", &jsonschema.Schema{Enum: []any{"", nil}})
		if use.body {
			then = withProp(&jsonschema.Schema{Required: []string{"body"}}, "body", nonEmptyText())
		}
		if !use.params {
			withProp(then, "params", &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "object", MaxProperties: ptr(uint64(0))}, {Type: "null"}}})
		}
		if !use.get {
			withProp(then, "method", &jsonschema.Schema{Not: &jsonschema.Schema{Type: "string", Pattern: "^" + anyCase("GET") + "$"}})
		}
		parent.AllOf = append(parent.AllOf, &jsonschema.Schema{If: is, Then: then})
	}
}

// pairsRule: params and headers, a mapping of names to values. The
// builder checks them as it builds them (headers, templates).
type pairsRule struct {
	names, notNames, values *regexp.Regexp
}

func (pairsRule) check(*builder, view) {}

func (r pairsRule) schema(reflect.Type) *jsonschema.Schema {
	names := &jsonschema.Schema{Pattern: r.names.String()}
	if r.notNames != nil {
		names.Not = &jsonschema.Schema{Pattern: r.notNames.String()}
	}
	value := &jsonschema.Schema{Ref: "#/$defs/text"}
	if r.values != nil {
		value = &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "string", Pattern: r.values.String()}, {Type: "number"}, {Type: "boolean"}, {Type: "null"}}}
	}
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
		{Type: "object", PropertyNames: names, AdditionalProperties: value},
		{Type: "null"},
	}}
}

// headerSeparators are the characters RFC 9110 keeps out of a token (a
// header name), besides controls, space and DEL.
const headerSeparators = `"(),/:;<=>?@[\]{}`

var (
	paramNamePattern = regexp.MustCompile(`.`)
	// A header name is an RFC 9110 token.
	headerNamePattern     = regexp.MustCompile(`^[` + tokenChars() + `]+$`)
	reservedHeaderPattern = regexp.MustCompile(`^(?:` + anyCaseAll(reservedHeaders) + `)$`)
	// Header values: no control character but tab (CR and LF would
	// inject headers).
	headerValuePattern = regexp.MustCompile(`^[^\x00-\x08\x0a-\x1f\x7f]*$`)
	// A Standard Webhooks key: whsec_ (optional) and standard base64 with
	// padding, not empty. signingSecretPattern is the rotation set:
	// space-separated keys.
	signingKeyPattern    = regexp.MustCompile(`^` + signingKey + `$`)
	signingSecretPattern = regexp.MustCompile(`^\s*(?:` + signingKey + `(?:\s+` + signingKey + `)*\s*)?$`)
)

const signingKey = `(?:whsec_)?(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})`

// tokenChars is a character class of RFC 9110 token characters.
func tokenChars() string {
	var b strings.Builder
	for c := byte('!'); c < 0x7f; c++ {
		if !strings.ContainsRune(headerSeparators, rune(c)) {
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return strings.ReplaceAll(b.String(), "-", `\-`)
}

func anyCaseAll(words []string) string {
	alts := make([]string, len(words))
	for i, w := range words {
		alts[i] = anyCase(w)
	}
	return strings.Join(alts, "|")
}

// nonEmptyText is text that is neither empty nor null.
func nonEmptyText() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "string", MinLength: ptr(uint64(1))}, {Type: "number"}, {Type: "boolean"}}}
}

func ptr[T any](v T) *T { return &v }

// withProp sets the schema of s's property key and returns s.
func withProp(s *jsonschema.Schema, key string, v *jsonschema.Schema) *jsonschema.Schema {
	if s.Properties == nil {
		s.Properties = jsonschema.NewProperties()
	}
	s.Properties.Set(key, v)
	return s
}

func described(s *jsonschema.Schema, desc string) *jsonschema.Schema {
	s.Description = desc
	return s
}

// withVariable admits ${VAR} beside s: the builder checks the value the
// variable holds, which a schema cannot know.
func withVariable(s *jsonschema.Schema) *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{s, {Ref: "#/$defs/variable"}}}
}
