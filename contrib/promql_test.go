package contrib

import (
	"reflect"
	"regexp"
	"slices"
	"sort"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
)

// targetLabels are added by Prometheus to every scraped series; the
// daemon's registry does not know them.
var targetLabels = map[string]bool{"job": true, "instance": true}

// promql parses expressions with Prometheus's default functions.
var promql = parser.NewParser(parser.Options{})

// registrySeries returns the series names the daemon exposes, as Prometheus
// stores them (a histogram X as X_bucket with "le", X_sum and X_count),
// each with its label names. Every labelled metric of metrics.Metrics gets
// one child first, since a vector without children is not gathered.
func registrySeries(t *testing.T) map[string]map[string]bool {
	t.Helper()
	m := metrics.New()
	m.WebhookOldest.Set("x", []string{"x"}, nil) // a collector of its own, not a vector
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		get := v.Field(i).MethodByName("GetMetricWithLabelValues")
		if !get.IsValid() {
			continue
		}
		// The label count is not exported: try counts until the vector
		// accepts one.
		ok := false
		for n := 0; n <= 10 && !ok; n++ {
			args := make([]reflect.Value, n)
			for j := range args {
				args[j] = reflect.ValueOf("x")
			}
			ok = get.Call(args)[1].IsNil()
		}
		if !ok {
			t.Fatalf("metrics.Metrics.%s: no label count from 0 to 10 works", v.Type().Field(i).Name)
		}
	}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	add := func(name string, ls []string, extra ...string) {
		set := map[string]bool{}
		for _, l := range append(ls, extra...) {
			set[l] = true
		}
		out[name] = set
	}
	for _, f := range fams {
		var ls []string
		if len(f.Metric) > 0 {
			for _, lp := range f.Metric[0].Label {
				ls = append(ls, lp.GetName())
			}
		}
		name := f.GetName()
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			add(name+"_bucket", ls, "le")
			add(name+"_sum", ls)
			add(name+"_count", ls)
		case dto.MetricType_SUMMARY:
			add(name, ls, "quantile")
			add(name+"_sum", ls)
			add(name+"_count", ls)
		default:
			add(name, ls)
		}
	}
	// Prometheus's own series of each target.
	add("up", nil)
	if len(out["poller_polls_total"]) != 2 || !out["poller_delivery_latency_seconds_bucket"]["le"] {
		t.Fatalf("the registry walk is broken: %v", out)
	}
	return out
}

// exprUse is what one PromQL expression refers to.
type exprUse struct {
	metrics []string        // metric names, sorted, without repeats
	labels  map[string]bool // label names its selectors can carry (and target labels)
}

// checkExpr parses expr and reports, as errors of t naming where, every
// metric the registry lacks, every matcher on a label the metric lacks, and
// every by/without/on/ignoring/group_x label no selector below carries.
func checkExpr(t *testing.T, series map[string]map[string]bool, where, expr string) exprUse {
	t.Helper()
	root, err := promql.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return exprUse{}
	}
	use := exprUse{labels: labelsBelow(series, root)}
	parser.Inspect(root, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name := selectorName(n)
			ls, ok := series[name]
			if !ok {
				t.Errorf("%s: metric %q is not in the daemon's registry", where, name)
				return nil
			}
			use.metrics = append(use.metrics, name)
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !ls[m.Name] && !targetLabels[m.Name] {
					t.Errorf("%s: %s has no label %q", where, name, m.Name)
				}
			}
		case *parser.AggregateExpr:
			checkLabels(t, where, "by/without", n.Grouping, labelsBelow(series, n.Expr))
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil {
				below := labelsBelow(series, n)
				checkLabels(t, where, "on/ignoring", vm.MatchingLabels, below)
				checkLabels(t, where, "group_left/right", vm.Include, below)
			}
		}
		return nil
	})
	sort.Strings(use.metrics)
	use.metrics = slices.Compact(use.metrics)
	return use
}

func checkLabels(t *testing.T, where, clause string, names []string, known map[string]bool) {
	t.Helper()
	for _, l := range names {
		if !known[l] {
			t.Errorf("%s: %s label %q is on no series it applies to", where, clause, l)
		}
	}
}

// labelsBelow is the union of the label names of every selector under
// node, plus the target labels.
func labelsBelow(series map[string]map[string]bool, node parser.Node) map[string]bool {
	out := map[string]bool{}
	for l := range targetLabels {
		out[l] = true
	}
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for l := range series[selectorName(vs)] {
				out[l] = true
			}
		}
		return nil
	})
	return out
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// templateLabel finds the labels a Grafana legend ({{account}}) or a
// Prometheus annotation ({{ $labels.account }}) prints.
var templateLabel = regexp.MustCompile(`\{\{\s*(?:\$labels\.)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// checkTemplate reports labels text prints that the expression's series
// cannot carry ($value and other non-label fields are skipped by the
// pattern).
func checkTemplate(t *testing.T, where, text string, use exprUse) {
	t.Helper()
	if use.labels == nil {
		return // the expression did not parse: already reported
	}
	for _, m := range templateLabel.FindAllStringSubmatch(text, -1) {
		if !use.labels[m[1]] {
			t.Errorf("%s: %q prints label %q, which its series do not have", where, text, m[1])
		}
	}
}
