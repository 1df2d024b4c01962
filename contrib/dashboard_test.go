package contrib

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dashboardMetrics are the series the dashboard is promised to show: polls
// and errors per account, API answers by code, change-to-delivery latency,
// outbox pending, dead letters, reconciled events and reloads.
var dashboardMetrics = []string{
	"poller_polls_total",
	"poller_last_poll_success_timestamp_seconds",
	"poller_api_requests_total",
	"poller_delivery_latency_seconds_bucket",
	"poller_deliveries_total",
	"poller_outbox_pending",
	"poller_dead_letters",
	"poller_reconciled_events_total",
	"poller_config_reloads_total",
	"poller_config_last_reload_successful",
	"poller_account_up",
	"poller_webhook_oldest_pending_seconds",
	"poller_build_info",
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {query, refId}
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name        string `json:"name"`
			Expr        string `json:"expr"`
			TitleFormat string `json:"titleFormat"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		RefID        string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

// grafanaVar matches $name, ${name} and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// grafanaBuiltins are the interval variables Grafana fills in itself.
var grafanaBuiltins = map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}

// expand replaces Grafana variables by values PromQL parses; a variable
// the dashboard does not define is an error.
func expand(t *testing.T, where, expr string, vars map[string]bool) string {
	t.Helper()
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		if !vars[name] {
			t.Errorf("%s: variable $%s is not defined in templating", where, name)
		}
		return "x"
	})
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// TestDashboards: every dashboard in grafana/ is valid JSON with a uid,
// panels that do not overlap, and queries that parse and use only metrics
// and labels the daemon registers; together they show every promised
// series.
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in grafana/ (%v)", err)
	}
	series := registrySeries(t)
	used := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q: both are needed for provisioning", f, d.UID, d.Title)
		}

		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q, _ := v.Query.(string)
			if m, ok := v.Query.(map[string]any); ok {
				q, _ = m["query"].(string)
			}
			where := f + ": variable " + v.Name
			lv := labelValues.FindStringSubmatch(q)
			if lv == nil {
				t.Errorf("%s: query %q is not label_values(selector, label)", where, q)
				continue
			}
			use := checkExpr(t, series, where, expand(t, where, lv[1], vars))
			if !use.labels[lv[2]] {
				t.Errorf("%s: %s has no label %q", where, lv[1], lv[2])
			}
		}
		for _, a := range d.Annotations.List {
			where := f + ": annotation " + a.Name
			use := checkExpr(t, series, where, expand(t, where, a.Expr, vars))
			checkTemplate(t, where, a.TitleFormat, use)
		}

		ids := map[int]bool{}
		var boxes []panel
		var walk func(ps []panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				where := f + ": panel " + p.Title
				if ids[p.ID] {
					t.Errorf("%s: id %d used twice", where, p.ID)
				}
				ids[p.ID] = true
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
					t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
				}
				boxes = append(boxes, p)
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if p.Title == "" || len(p.Targets) == 0 {
					t.Errorf("%s: a panel needs a title and a query", where)
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					if refs[tg.RefID] || tg.RefID == "" {
						t.Errorf("%s: refId %q missing or repeated", where, tg.RefID)
					}
					refs[tg.RefID] = true
					use := checkExpr(t, series, where, expand(t, where, tg.Expr, vars))
					checkTemplate(t, where+" legend", tg.LegendFormat, use)
					for _, m := range use.metrics {
						used[m] = true
					}
				}
			}
		}
		walk(d.Panels)
		for i, a := range boxes {
			for _, b := range boxes[i+1:] {
				if overlap(a, b) {
					t.Errorf("%s: panels %q and %q overlap", f, a.Title, b.Title)
				}
			}
		}
	}
	for _, m := range dashboardMetrics {
		if !used[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}
}

func overlap(a, b panel) bool {
	p, q := a.GridPos, b.GridPos
	return p.X < q.X+q.W && q.X < p.X+p.W && p.Y < q.Y+q.H && q.Y < p.Y+p.H
}

// TestDashboardDataSource: the data source picked at import (an __inputs
// entry) is the one every query runs on. Grafana writes the pick over
// "${DS_NAME}" wherever it stands; here it stands as the default of the
// data-source variable, and every panel, query, query variable and
// annotation uses that variable, so the pick reaches all of them and the
// variable can still switch them together.
func TestDashboardDataSource(t *testing.T) {
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in grafana/ (%v)", err)
	}
	type ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	type dsPanel struct {
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *ds    `json:"datasource"`
		Targets    []struct {
			Datasource *ds `json:"datasource"`
		} `json:"targets"`
		Panels []dsPanel `json:"panels"`
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Inputs []struct {
				Name     string `json:"name"`
				Type     string `json:"type"`
				PluginID string `json:"pluginId"`
			} `json:"__inputs"`
			Templating struct {
				List []struct {
					Name       string `json:"name"`
					Type       string `json:"type"`
					Query      any    `json:"query"`
					Datasource *ds    `json:"datasource"`
					Current    struct {
						Value string `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
			Annotations struct {
				List []struct {
					Name       string `json:"name"`
					Datasource *ds    `json:"datasource"`
				} `json:"list"`
			} `json:"annotations"`
			Panels []dsPanel `json:"panels"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(d.Inputs) != 1 || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
			t.Fatalf("%s: __inputs %+v, want one Prometheus data source", f, d.Inputs)
		}
		input := "${" + d.Inputs[0].Name + "}"
		// The variable of type datasource whose default is the input.
		use := ""
		for _, v := range d.Templating.List {
			if v.Type == "datasource" && v.Query == "prometheus" && v.Current.Value == input {
				use = "${" + v.Name + "}"
			}
		}
		if use == "" {
			t.Fatalf("%s: no Prometheus data-source variable defaults to the input %s: the input is asked for at import and used by nothing", f, input)
		}
		check := func(where string, got *ds) {
			t.Helper()
			if got == nil || got.Type != "prometheus" || got.UID != use {
				t.Errorf("%s: %s: data source %+v, want {prometheus %s}", f, where, got, use)
			}
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				check("variable "+v.Name, v.Datasource)
			}
		}
		for _, a := range d.Annotations.List {
			check("annotation "+a.Name, a.Datasource)
		}
		n := 0
		var walk func([]dsPanel)
		walk = func(ps []dsPanel) {
			for _, p := range ps {
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				n++
				check("panel "+p.Title, p.Datasource)
				for _, tg := range p.Targets {
					check("a query of panel "+p.Title, tg.Datasource)
				}
			}
		}
		walk(d.Panels)
		if n < 10 {
			t.Errorf("%s: only %d panels checked", f, n)
		}
	}
}
