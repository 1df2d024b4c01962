package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The age is taken at scrape time from the detection time last set; a
// webhook with nothing pending reads 0, one detected in the future (a
// clock stepped back) too; a webhook left out of Set loses its series, and
// ForgetAccount drops only its account's.
func TestPendingAges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := newPendingAges(func() time.Time { return now })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	expect := func(when, want string) {
		t.Helper()
		head := "# HELP poller_webhook_oldest_pending_seconds Seconds since the oldest event still pending for the webhook was detected; 0 with none pending.\n" +
			"# TYPE poller_webhook_oldest_pending_seconds gauge\n"
		if want != "" {
			want = head + want
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "poller_webhook_oldest_pending_seconds"); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	p.Set("acme", []string{"crm", "erp", "shop"}, map[string]time.Time{
		"crm": now.Add(-90 * time.Second), "shop": now.Add(time.Minute), "gone": now.Add(-time.Hour),
	})
	p.Set("other", []string{"x"}, map[string]time.Time{"x": now.Add(-time.Second)})
	expect("set", `poller_webhook_oldest_pending_seconds{account="acme",webhook="crm"} 90
poller_webhook_oldest_pending_seconds{account="acme",webhook="erp"} 0
poller_webhook_oldest_pending_seconds{account="acme",webhook="shop"} 0
poller_webhook_oldest_pending_seconds{account="other",webhook="x"} 1
`)
	now = now.Add(10 * time.Second)
	p.Set("acme", []string{"crm"}, map[string]time.Time{"crm": now.Add(-100 * time.Second)})
	expect("ten seconds later, two webhooks removed", `poller_webhook_oldest_pending_seconds{account="acme",webhook="crm"} 100
poller_webhook_oldest_pending_seconds{account="other",webhook="x"} 11
`)
	if n := p.DeletePartialMatch(prometheus.Labels{"account": "acme"}); n != 1 {
		t.Errorf("DeletePartialMatch removed %d series, want 1", n)
	}
	expect("acme forgotten", `poller_webhook_oldest_pending_seconds{account="other",webhook="x"} 11
`)
	if n := p.DeletePartialMatch(prometheus.Labels{"account": "other", "webhook": "y"}); n != 0 {
		t.Errorf("DeletePartialMatch of another webhook removed %d series", n)
	}
}

// poller_build_info says which build runs.
func TestBuildInfo(t *testing.T) {
	fams, err := New().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "poller_build_info" {
			continue
		}
		if len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() != 1 {
			t.Fatalf("poller_build_info = %v, want one series of 1", f.Metric)
		}
		labels := map[string]string{}
		for _, l := range f.Metric[0].Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] == "" || !strings.HasPrefix(labels["go_version"], "go") || len(labels) != 2 {
			t.Errorf("poller_build_info labels %v", labels)
		}
		return
	}
	t.Error("no poller_build_info")
}
