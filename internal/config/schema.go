package config

import (
	"encoding/json"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
)

// Schema returns the JSON Schema (draft 2020-12) of the config file, for
// editors and CI. It is generated from the raw structs the loader decodes
// into, descriptions from their doc tags, so it cannot drift from what
// Parse accepts: unknown keys are refused, and every scalar may be written
// as ${VAR}. The checks that need more than a type (ranges, choices, cron
// specs, files) are Parse's alone.
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
	s.Title = "retailcrm-poller configuration"
	s.Description = "The config file of retailcrm-poller (poller run -config FILE). ${NAME} in any value is replaced by the environment variable NAME; $$ is a literal $."
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
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

// JSONSchema: params and headers map names to single values.
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
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "boolean"}, variable()}}
}

// JSONSchema: an integer, or ${VAR}.
func (intValue) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "integer"}, variable()}}
}

// JSONSchema: a number, or ${VAR}.
func (numberValue) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "number"}, variable()}}
}
