package contrib

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/promqltest"
)

const alertsFile = "prometheus/alerts.yml"

// alertScenarios: for each alert, series in promqltest's load notation
// (one sample a minute from 0m), a time to evaluate at, and the accounts
// (or instances) the alert must fire for; the other series must stay quiet.
var alertScenarios = map[string]struct {
	load string
	at   time.Duration
	fire []string // values of the label named by key
	key  string
}{
	"RetailCRMPollerDeadLetters": {
		load: `poller_dead_letters{job="poller", instance="a", account="ghana"} 0x20
			poller_dead_letters{job="poller", instance="a", account="kenya"} 0x5 2x15`,
		at: 10 * time.Minute, fire: []string{"kenya"}, key: "account",
	},
	// ghana polls every minute; kenya's last success is stuck at 1m;
	// nigeria never succeeded. The interval is 60 s for all three.
	"RetailCRMPollerNotPolling": {
		load: `poller_poll_interval_seconds{job="poller", instance="a", account="ghana"} 60x20
			poller_poll_interval_seconds{job="poller", instance="a", account="kenya"} 60x20
			poller_poll_interval_seconds{job="poller", instance="a", account="nigeria"} 60x20
			poller_last_poll_success_timestamp_seconds{job="poller", instance="a", account="ghana"} 0+60x20
			poller_last_poll_success_timestamp_seconds{job="poller", instance="a", account="kenya"} 60x20`,
		at: 10 * time.Minute, fire: []string{"kenya", "nigeria"}, key: "account",
	},
	"RetailCRMPollerReconciledEvents": {
		load: `poller_reconciled_events_total{job="poller", instance="a", account="ghana"} 0x20
			poller_reconciled_events_total{job="poller", instance="a", account="kenya"} 0x10 1x10`,
		at: 15 * time.Minute, fire: []string{"kenya"}, key: "account",
	},
	"RetailCRMPollerReloadFailed": {
		load: `poller_config_last_reload_successful{job="poller", instance="a"} 1x20
			poller_config_last_reload_successful{job="poller", instance="b"} 1x5 0x15`,
		at: 10 * time.Minute, fire: []string{"b"}, key: "instance",
	},
	"RetailCRMPollerAPIForbidden": {
		load: `poller_api_requests_total{job="poller", instance="a", account="ghana", endpoint="history", code="200"} 0+10x20
			poller_api_requests_total{job="poller", instance="a", account="ghana", endpoint="orders", code="503"} 0+1x20
			poller_api_requests_total{job="poller", instance="a", account="kenya", endpoint="history", code="403"} 0x5 1+1x15`,
		at: 10 * time.Minute, fire: []string{"kenya"}, key: "account",
	},
}

// TestAlertRules: the file parses with Prometheus's rule parser, has the
// alerts operators are promised, uses only metrics and labels the daemon
// registers, and each alert fires exactly for the series in trouble.
func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.LegacyValidation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	series := registrySeries(t)
	var names []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("%s: recording rule %q: this file holds alerts only", alertsFile, r.Record)
				continue
			}
			names = append(names, r.Alert)
			where := alertsFile + ": " + r.Alert
			use := checkExpr(t, series, where, r.Expr)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, s)
			}
			for _, k := range []string{"summary", "description"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s: no %s annotation", where, k)
				}
				checkTemplate(t, where+" "+k, r.Annotations[k], use)
			}
			sc, ok := alertScenarios[r.Alert]
			if !ok {
				t.Errorf("%s: no scenario in alertScenarios: add one that makes it fire", where)
				continue
			}
			t.Run(r.Alert, func(t *testing.T) { checkFires(t, r.Expr, sc.load, sc.at, sc.key, sc.fire) })
		}
	}
	sort.Strings(names)
	var want []string
	for n := range alertScenarios {
		want = append(want, n)
	}
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("alerts %v, want %v", names, want)
	}
}

// checkFires evaluates expr over the loaded series at `at` and compares
// the values of label key in the result with fire.
func checkFires(t *testing.T, expr, load string, at time.Duration, key string, fire []string) {
	storage := promqltest.LoadedStorage(t, "load 1m\n"+load)
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 100000)
	q, err := engine.NewInstantQuery(context.Background(), storage, nil, expr, time.Unix(0, 0).Add(at))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range vec {
		got = append(got, s.Metric.Get(key))
	}
	sort.Strings(got)
	if !slices.Equal(got, fire) {
		t.Errorf("fires for %s %v, want %v\n%s", key, got, fire, vec)
	}
}
