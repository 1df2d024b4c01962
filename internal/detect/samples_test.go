package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/samples")

// samplesDir holds the published RetailCRM samples, mirrored (see its README).
const samplesDir = "../retailcrm/testdata/samples"

// sampleRules are the rule sets every history sample runs through. The
// statuses are codes the samples use.
var sampleRules = []struct {
	name string
	acct config.Account
}{
	{"statuses", config.Account{Statuses: []string{"new", "approved", "send-to-assembling", "complete"}, OnCreate: true}},
	{"no_on_create", config.Account{Statuses: []string{"new", "approved", "send-to-assembling", "complete"}}},
	{"sites", config.Account{Statuses: []string{"new", "approved", "send-to-assembling", "complete"}, OnCreate: true,
		Sites: []string{"shop-east", "shop-central"}}},
	{"skip_own_changes", config.Account{Statuses: []string{"new", "client-confirmed", "prepayed", "cancel-other", "awaiting-call"},
		OnCreate: true, SkipOwnChanges: true}},
}

// sampleEvent is an emitted event as the golden files record it.
type sampleEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	OrderID   int64  `json:"orderId"`
	Old       string `json:"oldValue,omitempty"`
	New       string `json:"newValue"`
	Source    string `json:"source"`
	CreatedAt string `json:"createdAt"`
}

type sampleAnomaly struct {
	HistoryID int64  `json:"historyId"`
	Kind      Reason `json:"kind"`
}

type sampleVerdicts struct {
	Events    []sampleEvent   `json:"events"`
	Anomalies []sampleAnomaly `json:"anomalies"`
	Skipped   map[Reason]int  `json:"skipped"`
}

// TestSamples runs every published history sample, read with the client
// from an httptest server, through Detect with each rule set and compares
// the outcome with testdata/samples/<sample>.golden.json (go test -update
// rewrites them; review the diff: it is what the poller would deliver).
func TestSamples(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples in %s (%v)", samplesDir, err)
	}
	n := 0
	for _, path := range paths {
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var probe map[string]json.RawMessage
		if json.Unmarshal(body, &probe) != nil || probe["history"] == nil {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			page := fetch(t, body)
			got := map[string]sampleVerdicts{}
			for _, rs := range sampleRules {
				acct := rs.acct
				acct.Name = "acme"
				got[rs.name] = verdicts(NewRules(acct), page.History)
			}
			golden(t, filepath.Join("testdata", "samples", name+".golden.json"), got)
		})
	}
	if n < 20 {
		t.Errorf("only %d history samples found", n)
	}
}

// fetch serves body as a history page and reads it with the client.
func fetch(t *testing.T, body []byte) retailcrm.HistoryPage {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := retailcrm.New(retailcrm.Options{BaseURL: srv.URL, APIKey: "k", RateLimit: -1, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.History(context.Background(), retailcrm.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return page
}

func verdicts(r Rules, entries []retailcrm.HistoryEntry) sampleVerdicts {
	out := sampleVerdicts{Events: []sampleEvent{}, Anomalies: []sampleAnomaly{}, Skipped: map[Reason]int{}}
	for _, e := range entries {
		v := Detect(r, e)
		if v.Anomaly != "" {
			out.Anomalies = append(out.Anomalies, sampleAnomaly{e.ID, v.Anomaly})
		}
		if !v.Emit {
			out.Skipped[v.Skip]++
			continue
		}
		ev := v.Candidate.Event
		out.Events = append(out.Events, sampleEvent{ev.ID, string(ev.Type), v.Candidate.OrderID,
			ev.Change.OldValue, ev.Change.NewValue, ev.Change.Source, ev.Change.CreatedAt})
	}
	return out
}

// golden compares v, as indented JSON, with path (-update rewrites it).
func golden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
	}
}
