package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// names lists the metric names registered under the poller_ prefix.
func names(t *testing.T, m *Metrics) []string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	go func() { m.Registry.Describe(ch); close(ch) }()
	re := regexp.MustCompile(`fqName: "(poller_[a-z_]+)"`)
	var out []string
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			out = append(out, m[1])
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d poller metrics registered: %v", len(out), out)
	}
	return out
}

// The reference documents every registered metric.
func TestReferenceDocumentsEveryMetric(t *testing.T) {
	data, err := os.ReadFile("../../docs/REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names(t, New()) {
		if !strings.Contains(string(data), "`"+n+"`") {
			t.Errorf("docs/REFERENCE.md does not document %s", n)
		}
	}
}
