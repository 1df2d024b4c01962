package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// schemaCannotSay lists what `poller check` refuses and the schema cannot
// (it accepts them): each is a file of testdata/schema/unexpressible,
// kept out of the agreement corpus, with the reason. docs/REFERENCE.md
// lists the same rules.
var schemaCannotSay = map[string]string{
	"cron_syntax":          "a cron spec is parsed by robfig/cron, no pattern states its grammar",
	"cron_never_fires":     "whether a cron spec ever fires needs its calendar (0 0 31 2 *)",
	"time_zone_unknown":    "time zone names are those of the time zone database",
	"look_back_time_short": "look_back_time is compared with two intervals of the schedule, another key's cron spec",
	"account_names_unique": "uniqueItems compares whole items, not one key of them (account names)",
	"webhook_names_unique": "uniqueItems compares whole items, not one key of them (webhook names)",
	"template_syntax":      "params and body are templates, parsed by internal/tmpl",
	"file_missing":         "*_file names a file that must exist, be readable and hold a value",
	"variable_unset":       "${VAR} is expanded from the environment before any check; the schema admits any value holding a variable",
	"variable_value":       "${VAR} is expanded from the environment before any check; the schema admits any value holding a variable",
	"email_address_syntax": "e-mail addresses are parsed by net/mail (RFC 5322); the schema asks for an @ only",
	"start_from_calendar":  "an RFC 3339 time must exist in the calendar (no 31 February)",
	"header_names_case":    "header names are compared ignoring case; a JSON object's keys are not",
	"url_syntax":           "URLs are parsed by net/url (escapes, host characters, ports); the schema states scheme, host, query and user info",
	"number_spelling":      "a number is checked as written (0.0 is no duration, 0 is); JSON keeps its value, not its spelling",
}

// corpusEnv is the environment the corpus is loaded with.
var corpusEnv = map[string]string{
	"SMTP_PASSWORD": "pw", "TOKEN": "t", "RATE": "5", "FLAG": "true", "N": "3",
	"TIMEOUT": "10s", "START": "now", "BAD_RATE": "50",
}

// TestSchemaAgreesWithCheck runs every config of testdata/schema through
// Parse (what `poller check` runs) and a third-party JSON Schema validator
// over the checked-in schema: valid/ must pass both, invalid/ fail both,
// and unexpressible/ (schemaCannotSay) fail check and pass the schema.
func TestSchemaAgreesWithCheck(t *testing.T) {
	s := compileSchema(t)
	counts := map[string]int{}
	for _, dir := range []string{"valid", "invalid", "unexpressible"} {
		files, err := filepath.Glob(filepath.Join("testdata/schema", dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		counts[dir] = len(files)
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".yaml")
			t.Run(dir+"/"+name, func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				_, checkErr := Parse(f, data, env(corpusEnv))
				schemaErr := s.Validate(yamlToJSON(t, data))
				checkOK, schemaOK := checkErr == nil, schemaErr == nil
				switch dir {
				case "unexpressible":
					if _, listed := schemaCannotSay[name]; !listed {
						t.Fatalf("not in schemaCannotSay: say why the schema cannot refuse it")
					}
					if checkOK || !schemaOK {
						t.Errorf("want check to refuse and the schema to accept; check: %v; schema: %v", checkErr, schemaErr)
					}
				default:
					if want := dir == "valid"; checkOK != want || schemaOK != want {
						t.Errorf("check ok=%v, schema ok=%v, want both %v\ncheck: %v\nschema: %v\n%s", checkOK, schemaOK, want, checkErr, schemaErr, data)
					}
				}
			})
		}
	}
	for name := range schemaCannotSay {
		if _, err := os.Stat(filepath.Join("testdata/schema/unexpressible", name+".yaml")); err != nil {
			t.Errorf("schemaCannotSay lists %s: %v", name, err)
		}
	}
	if counts["valid"] < 30 || counts["invalid"] < 60 {
		t.Errorf("corpus shrank: %v", counts)
	}
}
