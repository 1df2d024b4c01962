package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// describe returns the fqName and variable labels of every collector that
// c describes.
func describe(c prometheus.Collector) map[string]string {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	re := regexp.MustCompile(`fqName: "([a-z_]+)".*variableLabels: \{([a-z_,]*)\}`)
	out := map[string]string{}
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			out[m[1]] = m[2]
		}
	}
	return out
}

// Every metric with an account label is forgotten with the account, and
// only its series go.
func TestForgetAccountRemovesEverySeries(t *testing.T) {
	m := New()
	forgotten := map[string]bool{}
	for _, v := range m.perAccount {
		for name := range describe(v.vec.(prometheus.Collector)) {
			forgotten[name] = true
		}
	}
	for name, labels := range describe(m.Registry) {
		if strings.HasPrefix(labels, "account") && !forgotten[name] {
			t.Errorf("%s has an account label but ForgetAccount does not clear it", name)
		}
	}
	for _, account := range []string{"gone", "kept"} {
		for _, v := range m.perAccount {
			vals := append([]string{account}, make([]string, len(v.labels)-1)...)
			switch c := v.vec.(type) {
			case *CounterVec:
				c.WithLabelValues(vals...).Inc()
			case *GaugeVec:
				c.WithLabelValues(vals...).Set(1)
			case *HistogramVec:
				c.WithLabelValues(vals...).Observe(1)
			case *PendingAges:
				c.Set(account, []string{"w"}, nil)
			default:
				t.Fatalf("unexpected vector %T", c)
			}
		}
	}
	m.ForgetAccount("gone")
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "account" && l.GetValue() == "gone" {
					t.Errorf("%s still has a series of the forgotten account", f.GetName())
				}
				if l.GetName() == "account" && l.GetValue() == "kept" {
					kept++
				}
			}
		}
	}
	if kept != len(m.perAccount) {
		t.Errorf("%d series of the other account left, want %d", kept, len(m.perAccount))
	}
}

func TestAPIObserver(t *testing.T) {
	m := New()
	obs := m.APIObserver("acme")
	obs("history", 503)
	obs("history", 503)
	if got := testutil.ToFloat64(m.APIRequestsTotal.WithLabelValues("acme", "history", "503")); got != 2 {
		t.Fatalf("api_requests_total = %v, want 2", got)
	}
}
