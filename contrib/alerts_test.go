package contrib

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

const (
	alertsFile     = "prometheus/alerts.yml"
	operationsFile = "../docs/OPERATIONS.md"
	// runbookBase is where every alert's runbook_url points, followed by
	// the anchor of the alert's section.
	runbookBase = "https://github.com/retailcrm-poller/retailcrm-poller/blob/main/docs/OPERATIONS.md#"
	// job is the scrape job the rules select (contrib/README.md).
	job = "retailcrm-poller"
)

// loadAlerts parses the rules file with Prometheus's rule parser.
func loadAlerts(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.LegacyValidation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	var out []rulefmt.Rule
	for _, g := range groups.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestAlertRules: the file parses with Prometheus's rule parser, holds
// alerts only, uses only metrics and labels the daemon registers, prints
// only labels its series carry, and every alert has a severity and a
// runbook_url to its own section of docs/OPERATIONS.md.
func TestAlertRules(t *testing.T) {
	series := registrySeries(t)
	anchors := markdownAnchors(t, operationsFile)
	for _, r := range loadAlerts(t) {
		if r.Alert == "" {
			t.Errorf("%s: recording rule %q: this file holds alerts only", alertsFile, r.Record)
			continue
		}
		where := alertsFile + ": " + r.Alert
		use := checkExpr(t, series, where, r.Expr)
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", where, s)
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[k] == "" {
				t.Errorf("%s: no %s annotation", where, k)
			}
			checkTemplate(t, where+" "+k, r.Annotations[k], use)
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
		switch {
		case !ok:
			t.Errorf("%s: runbook_url %q does not start with %s", where, r.Annotations["runbook_url"], runbookBase)
		case anchor != strings.ToLower(r.Alert):
			t.Errorf("%s: runbook_url anchor #%s, want the alert's own section #%s", where, anchor, strings.ToLower(r.Alert))
		case !anchors[anchor]:
			t.Errorf("%s: runbook_url anchor #%s is no heading of %s", where, anchor, operationsFile)
		}
	}
}

// markdownAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation other than - and _ dropped,
// spaces as -.
func markdownAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	out := map[string]bool{}
	fence := false
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		heading, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fence || !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		a := drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(heading)), "")
		out[strings.ReplaceAll(a, " ", "-")] = true
	}
	if len(out) < 5 {
		t.Fatalf("%s: only %d headings found", file, len(out))
	}
	return out
}

// Series of a scrape of one instance, in promqltest's load notation with a
// sample a minute. run is how many minutes the series last; within a
// scenario of total minutes, a series that ends early gets a staleness
// marker, as Prometheus writes one when a target stops answering or leaves.

func target(instance string) string {
	return fmt.Sprintf(`job=%q, instance=%q`, job, instance)
}

// samples is n+1 samples of v, then a staleness marker if the series ends
// before total.
func samples(v string, n, total int) string {
	s := fmt.Sprintf("%sx%d", v, n)
	if n < total {
		s += " stale"
	}
	return s
}

// daemonSeries is a healthy daemon's own series on instance for run of
// total minutes.
func daemonSeries(instance string, run, total int) string {
	tg := target(instance)
	return fmt.Sprintf(`
		poller_build_info{%[1]s, version="v1.0.0", go_version="go1.26.7"} %[2]s
		process_start_time_seconds{%[1]s} %[3]s
		poller_config_last_reload_successful{%[1]s} %[2]s`,
		tg, samples("1", run, total), samples("0", run, total))
}

// accountSeries is a healthy account polled every minute, with one webhook
// "crm" that keeps up.
func accountSeries(instance, account string, run, total int) string {
	tg := fmt.Sprintf("%s, account=%q", target(instance), account)
	return fmt.Sprintf(`
		poller_poll_interval_seconds{%[1]s} %[2]s
		poller_account_up{%[1]s} %[3]s
		poller_account_last_success_timestamp_seconds{%[1]s} %[4]s
		poller_webhook_oldest_pending_seconds{%[1]s, webhook="crm"} %[5]s
		poller_dead_letters{%[1]s} %[5]s
		poller_reconciled_events_total{%[1]s} %[5]s`,
		tg, samples("60", run, total), samples("1", run, total), samples("0+60", run, total), samples("0", run, total))
}

// upSeries is Prometheus's up of instance: 1 for ok minutes, then 0 until
// total.
func upSeries(instance string, ok, total int) string {
	s := fmt.Sprintf("1x%d", ok)
	if ok < total {
		s += fmt.Sprintf(" 0x%d", total-ok-1)
	}
	return fmt.Sprintf("\n\t\tup{%s} %s", target(instance), s)
}

// healthy is instance a running for total minutes with accounts ghana and
// kenya, everything fine.
func healthy(total int) string {
	return upSeries("a", total, total) + daemonSeries("a", total, total) +
		accountSeries("a", "ghana", total, total) + accountSeries("a", "kenya", total, total)
}

// failures replays what goes wrong as the series Prometheus would hold,
// evaluating the rules every minute for minutes. fired lists each alert
// (name and labels, without job and severity) that must fire; it must
// fire exactly once (one page), and every other alert must stay quiet.
var failures = []struct {
	name    string
	minutes int
	load    string
	fired   []string
}{
	{
		name: "healthy", minutes: 120, load: healthy(120),
	},
	{
		// The process dies at 20m; Prometheus's scrapes fail from then on.
		name: "daemon gone", minutes: 60,
		load: upSeries("a", 20, 60) + daemonSeries("a", 20, 60) +
			accountSeries("a", "ghana", 20, 60) + accountSeries("a", "kenya", 20, 60),
		fired: []string{`RetailCRMPollerDown{instance="a"}`},
	},
	{
		// Two instances (active-active): b's scrapes fail from 20m while a
		// runs on.
		name: "scrape failing", minutes: 60,
		load:  healthy(60) + upSeries("b", 20, 60) + daemonSeries("b", 20, 60) + accountSeries("b", "ghana", 20, 60),
		fired: []string{`RetailCRMPollerDown{instance="b"}`},
	},
	{
		// The target leaves Prometheus's config or service discovery at
		// 20m: up goes with the rest, and absent() is what is left.
		name: "target gone from Prometheus", minutes: 60,
		load: fmt.Sprintf("\n\t\tup{%s} %s", target("a"), samples("1", 20, 60)) + daemonSeries("a", 20, 60) +
			accountSeries("a", "ghana", 20, 60),
		fired: []string{`RetailCRMPollerAbsent{}`},
	},
	{
		// Something else answers on the scraped address.
		name: "another exporter on the address", minutes: 30,
		load:  upSeries("a", 30, 30),
		fired: []string{`RetailCRMPollerAbsent{}`},
	},
	{
		// A new account whose key RetailCRM refuses: its first poll (1m)
		// fails with 403 and so does every retry; it never succeeds.
		name: "first 403", minutes: 30,
		load: healthy(30) + fmt.Sprintf(`
			poller_poll_interval_seconds{%[1]s, account="nigeria"} 60x30
			poller_account_up{%[1]s, account="nigeria"} _ 0x29
			poller_api_requests_total{%[1]s, account="nigeria", endpoint="history", code="403"} _ 1 1 1 2 2 2 2 3x22`, target("a")),
		fired: []string{`RetailCRMPollerAccountDown{account="nigeria", instance="a"}`},
	},
	{
		// kenya's key is revoked at 10m; the polls then back off.
		name: "key revoked", minutes: 60,
		load: upSeries("a", 60, 60) + daemonSeries("a", 60, 60) + accountSeries("a", "ghana", 60, 60) + fmt.Sprintf(`
			poller_poll_interval_seconds{%[1]s, account="kenya"} 60x60
			poller_account_up{%[1]s, account="kenya"} 1x10 0x49
			poller_account_last_success_timestamp_seconds{%[1]s, account="kenya"} 0+60x10 600x49`, target("a")),
		fired: []string{`RetailCRMPollerAccountDown{account="kenya", instance="a"}`},
	},
	{
		// kenya fails for six minutes at a time with one good poll between:
		// one page, not one a cycle, and it resolves after 40m of health.
		name: "flapping account", minutes: 90,
		load: upSeries("a", 90, 90) + daemonSeries("a", 90, 90) + accountSeries("a", "ghana", 90, 90) + fmt.Sprintf(`
			poller_poll_interval_seconds{%[1]s, account="kenya"} 60x90
			poller_account_up{%[1]s, account="kenya"} 1x4 0x5 1 0x5 1 0x5 1 0x5 1x60
			poller_account_last_success_timestamp_seconds{%[1]s, account="kenya"} 0+60x90`, target("a")),
		fired: []string{`RetailCRMPollerAccountDown{account="kenya", instance="a"}`},
	},
	{
		// kenya's poll hangs at 10m (nothing fails, nothing succeeds);
		// nigeria, added at start, never finishes a first poll.
		name: "wedged account", minutes: 40,
		load: upSeries("a", 40, 40) + daemonSeries("a", 40, 40) + accountSeries("a", "ghana", 40, 40) + fmt.Sprintf(`
			poller_poll_interval_seconds{%[1]s, account="kenya"} 60x40
			poller_account_up{%[1]s, account="kenya"} 1x40
			poller_account_last_success_timestamp_seconds{%[1]s, account="kenya"} 0+60x10 600x29
			poller_poll_interval_seconds{%[1]s, account="nigeria"} 60x40`, target("a")),
		fired: []string{
			`RetailCRMPollerNotPolling{account="kenya", instance="a"}`,
			`RetailCRMPollerNotPolling{account="nigeria", instance="a"}`,
		},
	},
	{
		// kenya's receiver "erp" is down from 10m to 70m; "crm" keeps up,
		// and ghana's receiver is merely busy (events wait up to 2m).
		name: "receiver down for an hour", minutes: 100,
		load: upSeries("a", 100, 100) + daemonSeries("a", 100, 100) + accountSeries("a", "kenya", 100, 100) + fmt.Sprintf(`
			poller_webhook_oldest_pending_seconds{%[1]s, account="kenya", webhook="erp"} 0x10 0+60x60 0x29
			poller_poll_interval_seconds{%[1]s, account="ghana"} 60x100
			poller_account_up{%[1]s, account="ghana"} 1x100
			poller_account_last_success_timestamp_seconds{%[1]s, account="ghana"} 0+60x100
			poller_webhook_oldest_pending_seconds{%[1]s, account="ghana", webhook="crm"} 0 30 120 60 0 90 120 0x93`, target("a")),
		fired: []string{`RetailCRMPollerDeliveryLagging{account="kenya", instance="a", webhook="erp"}`},
	},
	{
		// kenya's events start going to the dead letters at 20m.
		name: "dead letters growing", minutes: 40,
		load: upSeries("a", 40, 40) + daemonSeries("a", 40, 40) + accountSeries("a", "ghana", 40, 40) + fmt.Sprintf(`
			poller_poll_interval_seconds{%[1]s, account="kenya"} 60x40
			poller_account_up{%[1]s, account="kenya"} 1x40
			poller_account_last_success_timestamp_seconds{%[1]s, account="kenya"} 0+60x40
			poller_dead_letters{%[1]s, account="kenya"} 0x20 1+1x19`, target("a")),
		fired: []string{`RetailCRMPollerDeadLetters{account="kenya", instance="a"}`},
	},
	{
		// The orders sweep recovers a transition of kenya at 15m.
		name: "reconciled events", minutes: 40,
		load: upSeries("a", 40, 40) + daemonSeries("a", 40, 40) + accountSeries("a", "ghana", 40, 40) + fmt.Sprintf(`
			poller_poll_interval_seconds{%[1]s, account="kenya"} 60x40
			poller_account_up{%[1]s, account="kenya"} 1x40
			poller_account_last_success_timestamp_seconds{%[1]s, account="kenya"} 0+60x40
			poller_reconciled_events_total{%[1]s, account="kenya"} 0x15 1x25`, target("a")),
		fired: []string{`RetailCRMPollerReconciledEvents{account="kenya", instance="a"}`},
	},
	{
		// A broken config is reloaded at 10m and fixed at 30m.
		name: "reload failed", minutes: 40,
		load: upSeries("a", 40, 40) + accountSeries("a", "ghana", 40, 40) + fmt.Sprintf(`
			poller_build_info{%[1]s, version="v1.0.0", go_version="go1.26.7"} 1x40
			process_start_time_seconds{%[1]s} 0x40
			poller_config_last_reload_successful{%[1]s} 1x10 0x20 1x9`, target("a")),
		fired: []string{`RetailCRMPollerReloadFailed{instance="a"}`},
	},
}

// TestAlertsReplay runs each failure through Prometheus's rule engine
// (rules.AlertingRule over promql's engine, `for` and keep_firing_for
// included), evaluating every alert of the file once a minute, and checks
// which alerts fire, that each fires once, and that every alert of the
// file is the answer to some failure.
func TestAlertsReplay(t *testing.T) {
	alerts := loadAlerts(t)
	answered := map[string]bool{}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			fired := replay(t, alerts, f.load, f.minutes)
			var got []string
			for id, n := range fired {
				got = append(got, id)
				if n != 1 {
					t.Errorf("%s fired %d times, want once", id, n)
				}
				answered[id[:strings.IndexByte(id, '{')]] = true
			}
			sort.Strings(got)
			want := slices.Sorted(slices.Values(f.fired))
			if !slices.Equal(got, want) {
				t.Errorf("fired %q, want %q", got, want)
			}
		})
	}
	for _, r := range alerts {
		if !answered[r.Alert] {
			t.Errorf("%s fires in none of the failures: add the failure it is for", r.Alert)
		}
	}
}

// replay evaluates alerts over the loaded series every minute from 0 to
// minutes and returns how many times each alert (see alertID) went into
// the firing state.
func replay(t *testing.T, alerts []rulefmt.Rule, load string, minutes int) map[string]int {
	t.Helper()
	storage := promqltest.LoadedStorage(t, "load 1m"+load)
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 1_000_000)
	query := rules.EngineQueryFunc(engine, storage)
	var compiled []*rules.AlertingRule
	for _, r := range alerts {
		expr, err := promql.ParseExpr(r.Expr)
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		compiled = append(compiled, rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
			labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler)))
	}
	fired := map[string]int{}
	firing := map[string]bool{}
	for m := 0; m <= minutes; m++ {
		ts := time.Unix(0, 0).Add(time.Duration(m) * time.Minute)
		now := map[string]bool{}
		for _, r := range compiled {
			if _, err := r.Eval(context.Background(), 0, ts, query, nil, 0); err != nil {
				t.Fatalf("%s at %dm: %v", r.Name(), m, err)
			}
			for _, a := range r.ActiveAlerts() {
				if a.State == rules.StateFiring {
					now[alertID(a.Labels)] = true
				}
			}
		}
		for id := range now {
			if !firing[id] {
				fired[id]++
				t.Logf("%dm: %s fires", m, id)
			}
		}
		for id := range firing {
			if !now[id] {
				t.Logf("%dm: %s resolved", m, id)
			}
		}
		firing = now
	}
	return fired
}

// alertID is an alert's name and labels without job and severity, e.g.
// RetailCRMPollerDown{instance="a"}.
func alertID(ls labels.Labels) string {
	b := labels.NewBuilder(ls)
	b.Del(model.AlertNameLabel, "job", "severity")
	return ls.Get(model.AlertNameLabel) + b.Labels().String()
}
