package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// TestJSONOutputDocumented: what the -json flags print (status, dlq list,
// events show) has snake_case field names, each named in docs/REFERENCE.md.
// The event envelope inside is the webhooks' wire format, documented with
// the event.
func TestJSONOutputDocumented(t *testing.T) {
	ref, err := os.ReadFile("../../docs/REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	seen := map[reflect.Type]bool{}
	fields := 0
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Slice || rt.Kind() == reflect.Pointer {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] || rt == reflect.TypeFor[time.Time]() || rt == reflect.TypeFor[event.Event]() {
			return
		}
		seen[rt] = true
		for i := range rt.NumField() {
			sf := rt.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "-" || !sf.IsExported() {
				continue
			}
			fields++
			switch {
			case !snake.MatchString(name):
				t.Errorf("%s.%s prints as %q, not snake_case", rt.Name(), sf.Name, name)
			case !strings.Contains(string(ref), "`"+name+"`") && !strings.Contains(string(ref), "`"+name+"[]`"):
				t.Errorf("%s.%s (%q) is not documented in docs/REFERENCE.md", rt.Name(), sf.Name, name)
			}
			walk(sf.Type)
		}
	}
	for _, v := range []any{[]admin.AccountStatus{}, []store.Item{}, store.EventLog{}} {
		walk(reflect.TypeOf(v))
	}
	// latency_ms comes from Attempt's MarshalJSON.
	if !strings.Contains(string(ref), "`latency_ms`") {
		t.Errorf("latency_ms is not documented")
	}
	if fields < 40 {
		t.Errorf("walked %d fields", fields)
	}
}
