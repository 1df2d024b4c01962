package config

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"
)

// SchemaID is the schema's $id: a name, not a location. Nothing has to
// be fetched from it (editors read the file the config's first line names,
// /usr/share/retailcrm-poller/config.schema.json once installed), so it
// stays valid whatever hosts the project or its copies.
const SchemaID = "urn:retailcrm-poller:config"

// Schema returns the JSON Schema (draft 2020-12) of the config file, for
// editors and CI. It is generated from the raw structs the loader decodes
// into, descriptions from their doc tags, and the rules of their check
// tags, which are what the builder applies: unknown keys are refused,
// every closed set is an enum, ranges, patterns, required keys and the
// conditions between keys are the builder's. Every scalar may be written
// as ${VAR}: the schema admits any value holding one. What a schema cannot
// say (cron specs, time zones, files, templates, names unique across a
// list; docs/REFERENCE.md lists them) is Parse's alone.
func Schema() ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true, // only `jsonschema:"required"` keys; yaml tags have no omitempty
		ExpandedStruct:             true,
		Anonymous:                  true,
		Namer:                      schemaName,
		LookupComment: func(t reflect.Type, name string) string {
			if t.Kind() != reflect.Struct || name == "" {
				return ""
			}
			if f, ok := t.FieldByName(name); ok {
				return f.Tag.Get("doc")
			}
			return ""
		},
	}
	s := r.Reflect(&rawConfig{})
	s.ID = SchemaID
	s.Title = "retailcrm-poller configuration"
	s.Description = "The config file of retailcrm-poller (poller run -config FILE). ${NAME} in any value is replaced by the environment variable NAME; $$ is a literal $."
	s.Definitions["variable"] = variable()
	applyRules(s, reflect.TypeFor[rawConfig]())
	for _, t := range structTypes(reflect.TypeFor[rawConfig]()) {
		if def, ok := s.Definitions[schemaName(t)]; ok {
			applyRules(def, t)
		}
	}
	// An account without webhooks inherits the defaults' (applyDefaults):
	// unless those are there, each account needs its own.
	one := uint64(1)
	s.AllOf = append(s.AllOf, &jsonschema.Schema{
		If: withProp(&jsonschema.Schema{Required: []string{"defaults"}}, "defaults",
			withProp(&jsonschema.Schema{Required: []string{"webhooks"}}, "webhooks", &jsonschema.Schema{Type: "array", MinItems: &one})),
		Else: withProp(&jsonschema.Schema{}, "accounts", &jsonschema.Schema{Items: &jsonschema.Schema{Required: []string{"webhooks"}}}),
	})
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// applyRules narrows the properties of def, the schema of struct t, by
// the rules of t's check tags, and lets a mapping be null (no keys).
func applyRules(def *jsonschema.Schema, t reflect.Type) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if opts == "inline" {
			applyRules(def, sf.Type)
			continue
		}
		prop, ok := def.Properties.Get(name)
		if !ok {
			continue
		}
		vt, isField := valueType(sf.Type)
		r := fieldRule(t, i)
		switch {
		case r != nil:
			v := r.schema(vt)
			if vt.Kind() != reflect.Slice && vt.Kind() != reflect.Struct && vt != reflect.TypeFor[pairs]() {
				v = withVariable(v)
			}
			def.Properties.Set(name, described(v, prop.Description))
			if o, ok := r.(objectRule); ok {
				o.object(def, name)
			}
		case !isField && vt.Kind() == reflect.Struct:
			// log: with nothing under it decodes as no keys.
			def.Properties.Set(name, &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Ref: prop.Ref}, {Type: "null"}}, Description: prop.Description})
		}
	}
}

// valueType is the Go type of a key's value: T of a field[T].
func valueType(t reflect.Type) (reflect.Type, bool) {
	if reflect.PointerTo(t).Implements(setterType) {
		return t.Field(0).Type, true
	}
	return t, false
}

// structTypes lists the raw struct types reachable from t (its keys'
// values and list items), each once.
func structTypes(t reflect.Type) []reflect.Type {
	var out []reflect.Type
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			ft, _ := valueType(t.Field(i).Type)
			for ft.Kind() == reflect.Slice {
				ft, _ = valueType(ft.Elem())
			}
			if ft.Kind() == reflect.Struct && !slices.Contains(out, ft) {
				out = append(out, ft)
				walk(ft)
			}
		}
	}
	walk(t)
	return out
}

// schemaName names the definitions after the YAML they describe:
// rawWebhook is "webhook", rawSettings "settings".
func schemaName(t reflect.Type) string {
	if n, ok := strings.CutPrefix(t.Name(), "raw"); ok {
		return strings.ToLower(n[:1]) + n[1:]
	}
	switch t {
	case reflect.TypeFor[textValue]():
		return "text"
	case reflect.TypeFor[boolValue]():
		return "boolean"
	case reflect.TypeFor[intValue]():
		return "integer"
	case reflect.TypeFor[numberValue]():
		return "number"
	}
	return t.Name()
}

// JSONSchemaAlias gives a field[T] the schema of T; a scalar's also admits
// ${VAR}, which the loader expands before it reads the value.
func (field[T]) JSONSchemaAlias() any {
	var v T
	switch any(v).(type) {
	case string:
		return textValue{}
	case bool:
		return boolValue{}
	case int:
		return intValue{}
	case float64:
		return numberValue{}
	}
	return v
}

// JSONSchema: params and headers map names to single values (their
// rules say which).
func (pairs) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", AdditionalProperties: &jsonschema.Schema{Ref: "#/$defs/text"}}
}

// The scalar schemas.
type (
	textValue   struct{}
	boolValue   struct{}
	intValue    struct{}
	numberValue struct{}
)

// variable is a string holding ${NAME}: a value of any type once expanded.
func variable() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: `\$\{[A-Za-z_][A-Za-z0-9_]*\}`, Description: "${NAME}: the environment variable's value"}
}

// JSONSchema: a string key takes any single value (api_key: 12345 is the
// text "12345"; an empty value is "").
func (textValue) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "string"}, {Type: "number"}, {Type: "boolean"}, {Type: "null"}}}
}

// JSONSchema: true or false, or ${VAR}.
func (boolValue) JSONSchema() *jsonschema.Schema {
	return withVariable(&jsonschema.Schema{Type: "boolean"})
}

// JSONSchema: an integer, or ${VAR}.
func (intValue) JSONSchema() *jsonschema.Schema {
	return withVariable(&jsonschema.Schema{Type: "integer"})
}

// JSONSchema: a number, or ${VAR}.
func (numberValue) JSONSchema() *jsonschema.Schema {
	return withVariable(&jsonschema.Schema{Type: "number"})
}
