package condition

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

var update = flag.Bool("update", false, "rewrite testdata/examples.golden")

// example is one expression of RetailCRM's documentation with the verdicts
// the documentation describes.
type example struct {
	line        int
	source      string
	when        string
	true, false []string
}

// readExamples parses testdata/examples.txt (its format is described at
// its top).
func readExamples(t *testing.T) []example {
	t.Helper()
	f, err := os.Open("testdata/examples.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []example
	var cur example
	var comment []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		key, value, _ := strings.Cut(line, ": ")
		switch {
		case strings.HasPrefix(line, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		case line == "":
			if cur.when != "" {
				out = append(out, cur)
			}
			cur, comment = example{}, nil
		case key == "when":
			if len(comment) == 0 {
				t.Fatalf("examples.txt:%d: the example does not say where it comes from", n)
			}
			cur = example{line: n, source: strings.Join(comment, " "), when: value}
		case key == "true" || key == "false":
			names := strings.Split(value, ", ")
			if key == "true" {
				cur.true = names
			} else {
				cur.false = names
			}
		default:
			t.Fatalf("examples.txt:%d: cannot read %q", n, line)
		}
	}
	if cur.when != "" {
		out = append(out, cur)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// savedSet is one save of an order: a history page as the API returns it
// and the order as GET /api/v5/orders returns it (none when deleted).
type savedSet struct {
	entries []retailcrm.HistoryEntry
	order   json.RawMessage
}

func readSets(t *testing.T) (names []string, sets map[string]savedSet) {
	t.Helper()
	files, err := filepath.Glob("testdata/sets/*.history.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sets: %v", err)
	}
	sets = map[string]savedSet{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".history.json")
		var page retailcrm.HistoryPage
		readJSON(t, file, &page)
		var orders struct {
			Orders []json.RawMessage `json:"orders"`
		}
		readJSON(t, strings.TrimSuffix(file, ".history.json")+".orders.json", &orders)
		set := savedSet{entries: page.History}
		if len(orders.Orders) > 0 {
			set.order = orders.Orders[0]
		}
		sets[name] = set
		names = append(names, name)
	}
	slices.Sort(names)
	return names, sets
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// readStatuses is the statuses reference as GET /api/v5/reference/statuses
// returns it.
func readStatuses(t *testing.T) statuses {
	var ref struct {
		Statuses map[string]struct {
			Code  string `json:"code"`
			Group string `json:"group"`
		} `json:"statuses"`
	}
	readJSON(t, "testdata/statuses.json", &ref)
	out := statuses{}
	for _, s := range ref.Statuses {
		out[s.Code] = s.Group
	}
	return out
}

// TestDocumentedExamples evaluates every example of RetailCRM's PipeLang
// documentation (testdata/examples.txt) over every change set of
// testdata/sets: the verdicts the documentation describes must hold, and
// the whole table is the golden file testdata/examples.golden
// (regenerate with -update).
func TestDocumentedExamples(t *testing.T) {
	examples := readExamples(t)
	if len(examples) < 30 {
		t.Fatalf("only %d examples read", len(examples))
	}
	names, sets := readSets(t)
	refs := readStatuses(t)
	var golden bytes.Buffer
	for _, ex := range examples {
		c, err := Compile(ex.when)
		if err != nil {
			t.Errorf("examples.txt:%d: %s: %v", ex.line, ex.when, err)
			continue
		}
		if u := c.UnknownFields(); len(u) > 0 {
			t.Errorf("examples.txt:%d: fields %q reported unknown", ex.line, u)
		}
		fmt.Fprintf(&golden, "%s\n", ex.when)
		verdicts := map[string]string{}
		for _, name := range names {
			set := sets[name]
			got, err := c.Eval(set.entries, set.order, refs)
			v := fmt.Sprint(got)
			if err != nil {
				v = "error: " + err.Error()
			}
			verdicts[name] = v
			fmt.Fprintf(&golden, "  %-28s %s\n", name, v)
		}
		for want, list := range map[string][]string{"true": ex.true, "false": ex.false} {
			for _, name := range list {
				if _, ok := sets[name]; !ok {
					t.Errorf("examples.txt:%d: no set %q", ex.line, name)
				} else if verdicts[name] != want {
					t.Errorf("examples.txt:%d: %s\n  over %s: %s, the documentation says %s (%s)", ex.line, ex.when, name, verdicts[name], want, ex.source)
				}
			}
		}
	}
	const file = "testdata/examples.golden"
	if *update {
		if err := os.WriteFile(file, golden.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/condition -run TestDocumentedExamples -update)", err)
	}
	if !bytes.Equal(want, golden.Bytes()) {
		t.Errorf("verdicts differ from %s (-update rewrites it after a review):\n%s", file, golden.String())
	}
}
