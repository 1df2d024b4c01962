package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/deliver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// hookLog is a receiver that records which webhook-ids each path got and
// answers 503 on failing paths.
type hookLog struct {
	*httptest.Server
	mu      sync.Mutex
	ids     map[string][]string // path -> webhook-ids, in arrival order
	failing map[string]bool
}

func newHookLog(t *testing.T, failing ...string) *hookLog {
	h := &hookLog{ids: map[string][]string{}, failing: map[string]bool{}}
	for _, p := range failing {
		h.failing[p] = true
	}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.ids[r.URL.Path] = append(h.ids[r.URL.Path], r.Header.Get("webhook-id"))
		fail := h.failing[r.URL.Path]
		h.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookLog) got(path string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids[path])
}

// TestReloadWebhooks: webhooks are identified by name across a real
// reload. Reordering two named webhooks changes nothing; removing one
// dead-letters its pending events with reason "webhook removed" (listed,
// counted, in the metrics) and never sends them to the other.
func TestReloadWebhooks(t *testing.T) {
	e := newEnv(t)
	a := e.account("alpha", "")
	hooks := newHookLog(t, "/b")
	write := func(names ...string) {
		var b strings.Builder
		fmt.Fprintf(&b, "state_dir: %s\nlisten: 127.0.0.1:0\nadmin_socket: %s\nlog: {level: debug, format: json}\naccounts:\n",
			filepath.Join(e.dir, "state"), filepath.Join(e.dir, "admin.sock"))
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    api_key: %s\n    schedule: %q\n    start_from: beginning\n    webhooks:\n",
			a.name, a.url, a.key, a.schedule)
		for _, n := range names {
			fmt.Fprintf(&b, "      - name: %s\n        url: %s/%s\n        secret: %s\n        timeout: 2s\n", n, hooks.URL, n, webhookSecret)
		}
		e.writeRaw(b.String())
	}
	write("a", "b")
	d := e.start()
	m := d.ready.Metrics
	reloads := 0
	reload := func(names ...string) {
		t.Helper()
		write(names...)
		reloads++
		d.reload <- struct{}{}
		waitFor(t, "the reload", func() bool {
			return testutil.ToFloat64(m.ConfigReloadsTotal.WithLabelValues("ok")) == float64(reloads)
		})
	}
	cfg := func() *config.Config {
		t.Helper()
		c, err := config.Load(e.path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	queues := func() map[string]admin.QueueStatus {
		t.Helper()
		sts, err := admin.Status(context.Background(), cfg())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]admin.QueueStatus{}
		for _, q := range sts[0].Queues {
			out[q.Webhook] = q
		}
		return out
	}

	ids := []string{approve(e.sim1("alpha")), approve(e.sim1("alpha"))}
	waitFor(t, "delivery to a", func() bool { return len(hooks.got("/a")) == len(ids) })
	waitFor(t, "b's first attempts", func() bool { return len(hooks.got("/b")) >= len(ids) })

	waitFor(t, "a's queue empty", func() bool { return queues()["a"].Pending == 0 })
	reload("b", "a")
	// The reload read the oldest pending event of each queue: b's is its
	// first event, a's queue is empty.
	ages := oldestPending(t, d)
	if ages["b"] <= 0 || ages["a"] != 0 || len(ages) != 2 {
		t.Errorf("poller_webhook_oldest_pending_seconds = %v, want b's above 0 and a's 0", ages)
	}
	ids = append(ids, approve(e.sim1("alpha")))
	waitFor(t, "delivery to a after reordering", func() bool { return len(hooks.got("/a")) == len(ids) })
	waitFor(t, "b pending with the new event", func() bool { return queues()["b"].Pending == len(ids) })
	if q := queues(); q["b"].Dead != 0 || !q["b"].Configured || q["a"].Pending != 0 {
		t.Errorf("after reordering: queues %+v", q)
	}

	reload("a")
	waitFor(t, "b's events dead-lettered", func() bool { return queues()["b"].Dead == len(ids) })
	q := queues()
	if b := q["b"]; b.Configured || b.Pending != 0 {
		t.Errorf("removed webhook's queue %+v", b)
	}
	dead, err := admin.DLQList(context.Background(), cfg(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	var deadIDs []string
	for _, it := range dead {
		if it.Webhook != "b" || it.DeadReason != deliver.ReasonRemoved {
			t.Errorf("dead letter %s/%s reason %q", it.Webhook, it.Event.ID, it.DeadReason)
		}
		deadIDs = append(deadIDs, it.Event.ID)
	}
	slices.Sort(deadIDs)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(deadIDs, want) {
		t.Errorf("dead letters %v, want %v", deadIDs, want)
	}
	waitFor(t, "the dead-letter gauge", func() bool {
		return testutil.ToFloat64(m.DeadLetters.WithLabelValues("alpha")) == float64(len(ids))
	})
	ages = oldestPending(t, d)
	if _, ok := ages["a"]; len(ages) != 1 || !ok {
		t.Errorf("poller_webhook_oldest_pending_seconds after b was removed = %v, want only a's", ages)
	}
	// a got each event once, never one of b's again.
	if got := slices.Sorted(slices.Values(hooks.got("/a"))); !slices.Equal(got, want) {
		t.Errorf("a got %v, want %v", got, want)
	}
	before := len(hooks.got("/b"))
	time.Sleep(6 * time.Second) // past b's first retry (5s)
	if n := len(hooks.got("/b")) - before; n != 0 {
		t.Errorf("the removed webhook got %d more requests", n)
	}
	// Its dead letters cannot be retried while it is not configured.
	if _, err := admin.DLQRetry(context.Background(), cfg(), "alpha", nil); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("dlq retry of a removed webhook's dead letters: %v", err)
	}
}

// oldestPending reads poller_webhook_oldest_pending_seconds of alpha from
// the daemon's /metrics, by webhook.
func oldestPending(t *testing.T, d *running) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	f := testkit.Families(t, metricsBody(t, "http://"+d.ready.HTTPAddr))["poller_webhook_oldest_pending_seconds"]
	for _, m := range f.GetMetric() {
		var account, webhook string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "account":
				account = l.GetValue()
			case "webhook":
				webhook = l.GetValue()
			}
		}
		if account == "alpha" {
			out[webhook] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestOldestPendingAfterRestart: the age of a webhook's oldest pending
// event counts from its detection, across a restart of the daemon, not
// from the restart.
func TestOldestPendingAfterRestart(t *testing.T) {
	e := newEnv(t)
	a := e.account("alpha", "")
	hooks := newHookLog(t, "/down")
	e.writeRaw(fmt.Sprintf("state_dir: %s\nlisten: 127.0.0.1:0\nadmin_socket: %s\nlog: {level: debug, format: json}\naccounts:\n"+
		"  - name: %s\n    url: %s\n    api_key: %s\n    schedule: %q\n    start_from: beginning\n    webhooks:\n"+
		"      - {url: %s/down, secret: %s, timeout: 2s}\n",
		filepath.Join(e.dir, "state"), filepath.Join(e.dir, "admin.sock"), a.name, a.url, a.key, a.schedule, hooks.URL, webhookSecret))
	approve(e.sim1("alpha"))
	d := e.start()
	waitFor(t, "a first failed attempt", func() bool { return len(hooks.got("/down")) > 0 })
	d.reload <- struct{}{} // the gauges are read from the store at a reload (else every minute)
	var before float64
	waitFor(t, "the pending event's age", func() bool {
		before = oldestPending(t, d)["1"]
		return before > 0
	})
	stopped := time.Now()
	if _, err := d.stop(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	d = e.start()
	restarted := time.Now()
	after := oldestPending(t, d)["1"]
	// Between the two reads more time passed than between stopped and
	// restarted; an age counted from the restart would be below both.
	if least := before + restarted.Sub(stopped).Seconds(); after < least {
		t.Errorf("age after the restart %.3fs, want at least %.3fs (before: %.3fs)", after, least, before)
	}
}
