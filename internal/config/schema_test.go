package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite docs/config.schema.json from the raw structs")

const schemaFile = "../../docs/config.schema.json"

// TestSchemaFileUpToDate: the checked-in schema is what `poller config
// schema` prints. Regenerate it with go test ./internal/config -run
// TestSchemaFileUpToDate -update.
func TestSchemaFileUpToDate(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./internal/config -run TestSchemaFileUpToDate -update", schemaFile)
	}
}

// compileSchema compiles the checked-in schema with a real validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlToJSON is what an editor validates: the YAML document as JSON values,
// anchors and merge keys resolved, and a timestamp the text it is written
// as (the loader reads start_from: 2024-05-01T10:00:00Z as that text).
func yamlToJSON(t *testing.T, data []byte) any {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var retag func(*yaml.Node)
	retag = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp" {
			n.Tag = "!!str"
		}
		for _, c := range n.Content {
			retag(c)
		}
	}
	retag(&doc)
	var v any
	if len(doc.Content) > 0 {
		if err := doc.Content[0].Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// TestSchemaAcceptsGoodConfigs: the example and every config of testdata
// that loads are valid against the schema.
func TestSchemaAcceptsGoodConfigs(t *testing.T) {
	s := compileSchema(t)
	files := []string{"../../config.example.yaml", "testdata/valid.yaml"}
	sources := map[string][]byte{"anchored accounts": anchoredAccounts(20), "minimal": []byte(minimal)}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources[f] = data
	}
	vars := map[string]string{"GHANA_API_KEY": "k", "WEBHOOK_SECRET": hookSecret, "RECEIVER_TOKEN": "t", "RATE": "5", "FLAG": "true", "N": "3"}
	// Every scalar may be ${VAR}, numbers and booleans included.
	sources["variables"] = []byte(strings.Replace(minimal, "    webhooks:", "    rate_limit: ${RATE}\n    on_create: ${FLAG}\n    page_budget: ${N}\n    webhooks:", 1))
	for name, data := range sources {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(filepath.Join("testdata", "x.yaml"), data, env(vars)); err != nil {
				t.Fatalf("the config itself does not load: %v", err)
			}
			if err := s.Validate(yamlToJSON(t, data)); err != nil {
				t.Errorf("schema refuses a good config: %v", err)
			}
		})
	}
}

// TestSchemaRefusesBadConfigs: unknown keys, wrong types and missing
// required keys fail the schema as they fail Parse.
func TestSchemaRefusesBadConfigs(t *testing.T) {
	s := compileSchema(t)
	tests := []struct{ name, src string }{
		{"unknown top-level key", "stat_dir: x\n" + minimal},
		{"unknown webhook key", minimal + "        formt: json\n"},
		{"unknown account key in defaults", "defaults: {api_key: k}\n" + minimal},
		{"number as text", strings.Replace(minimal, "    webhooks:", "    rate_limit: fast\n    webhooks:", 1)},
		{"boolean as text", strings.Replace(minimal, "    webhooks:", "    on_create: maybe\n    webhooks:", 1)},
		{"fraction for an integer", minimal + "        concurrency: 1.5\n"},
		{"list as scalar", strings.Replace(minimal, "    webhooks:", "    statuses: approved\n    webhooks:", 1)},
		{"mapping for a list", "accounts: {ghana: {}}\n"},
		{"mapping for a value", strings.Replace(minimal, "api_key: key", "api_key: {value: key}", 1)},
		{"nested param", minimal + "        params: {a: {b: c}}\n"},
		{"no accounts key", "listen: ''\n"},
		{"account without url", "accounts: [{name: a, api_key: k, webhooks: [{url: 'http://x'}]}]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("c.yaml", []byte(tt.src), env(nil)); err == nil {
				t.Fatalf("Parse accepts the config the schema must refuse")
			}
			if err := s.Validate(yamlToJSON(t, []byte(tt.src))); err == nil {
				t.Errorf("schema accepts:\n%s", tt.src)
			}
		})
	}
}

// TestEveryKeyDescribed: each key of the raw structs has a doc tag, which
// is its description in the schema.
func TestEveryKeyDescribed(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		if seen[rt] {
			return
		}
		seen[rt] = true
		for i := range rt.NumField() {
			sf := rt.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if opts != "inline" && sf.Tag.Get("doc") == "" {
				t.Errorf("%s.%s (%s) has no doc tag", rt.Name(), sf.Name, name)
			}
			for ft := sf.Type; ; {
				switch {
				case ft.Kind() == reflect.Slice && ft.Name() == "":
					ft = ft.Elem()
					continue
				case ft.Kind() == reflect.Struct && strings.HasPrefix(ft.Name(), "field["):
					ft = ft.Field(0).Type
					continue
				case ft.Kind() == reflect.Struct:
					walk(ft)
				}
				break
			}
		}
	}
	walk(reflect.TypeFor[rawConfig]())
	if len(seen) < 8 {
		t.Errorf("walked %d structs", len(seen))
	}
	data, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"description"`); n < 50 {
		t.Errorf("the schema has %d descriptions", n)
	}
	if doc["additionalProperties"] != false {
		t.Errorf("the top level admits unknown keys: %v", doc["additionalProperties"])
	}
	fmt.Fprint(new(bytes.Buffer), doc) // the schema is plain JSON
}
