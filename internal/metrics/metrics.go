// Package metrics defines the poller's Prometheus metrics (docs/REFERENCE.md,
// "Metrics"). One Metrics value is created per process and passed to the
// poll, delivery and daemon packages; tests create their own registry.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

// Metrics holds every collector. Label names are part of the contract.
type Metrics struct {
	Registry *prometheus.Registry

	PollsTotal         *CounterVec            // account, result (ok|error)
	APIRequestsTotal   *CounterVec            // account, endpoint, code
	EventsDetected     *CounterVec            // account, type
	DeliveriesTotal    *CounterVec            // account, webhook, result (ok|retry|dead)
	OutboxPending      *GaugeVec              // account
	DeadLetters        *GaugeVec              // account
	CursorHistoryID    *GaugeVec              // account
	LastPollSuccess    *GaugeVec              // account, unix seconds
	DeliveryLatency    *HistogramVec          // account, detection -> 2xx
	HistoryAnomalies   *CounterVec            // account, kind: odd history input that was logged and skipped
	ReconciledEvents   *CounterVec            // account: transitions the orders sweep found that the poll had missed
	PollInterval       *GaugeVec              // account: the schedule's interval, so alerts can count missed polls
	ConfigReloadsTotal *prometheus.CounterVec // result (ok|error)
	ConfigLastReloadOK prometheus.Gauge       // 1 if the last reload succeeded
	AccountUp          *GaugeVec              // account: 1 after a successful poll, 0 after a failed one
	AccountLastSuccess *GaugeVec              // account, unix seconds: the daemon's view, kept over restarts
	WebhookOldest      *PendingAges           // account, webhook: age of the oldest pending event

	// perAccount are the vectors with an account label, in the order
	// they were made: ForgetAccount clears each of them.
	perAccount []accountVec
}

// accountVec is a registered vector whose first label is the account.
type accountVec struct {
	vec    interface{ DeletePartialMatch(prometheus.Labels) int }
	labels []string // all its labels, "account" first
}

// New registers every metric on a fresh registry, with the Go and process
// collectors. Each metric is named once, here; the helpers register it and
// remember the per-account ones.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.PollsTotal = m.counters("poller_polls_total", "Polls of an account's order history, by result (ok, error).", "result")
	m.APIRequestsTotal = m.counters("poller_api_requests_total", "RetailCRM API requests by endpoint and HTTP status code (0: transport error).", "endpoint", "code")
	m.EventsDetected = m.counters("poller_events_detected_total", "Events written to the outbox, by type.", "type")
	m.DeliveriesTotal = m.counters("poller_deliveries_total", "Delivery attempts by result (ok, retry, dead).", "webhook", "result")
	m.OutboxPending = m.gauges("poller_outbox_pending", "Events waiting for delivery (all webhooks).")
	m.DeadLetters = m.gauges("poller_dead_letters", "Dead-lettered events (all webhooks).")
	m.CursorHistoryID = m.gauges("poller_cursor_history_id", "Highest order history id handled.")
	m.LastPollSuccess = m.gauges("poller_last_poll_success_timestamp_seconds", "Unix time of the last successful poll.")
	m.DeliveryLatency = newHistogramVec("poller_delivery_latency_seconds",
		"Time from detection (outbox commit) to a successful delivery.",
		[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}, []string{"account"})
	m.perAccountVec(m.DeliveryLatency, "account")
	m.HistoryAnomalies = m.counters("poller_history_anomalies_total", "Unexpected history input that was logged and skipped, by kind.", "kind")
	m.ReconciledEvents = m.counters("poller_reconciled_events_total", "Transitions the orders sweep found that the history poll had missed.")
	m.PollInterval = m.gauges("poller_poll_interval_seconds",
		"Seconds between two scheduled polls of the account's history (for a cron spec, between its next two runs).")

	m.ConfigReloadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poller_config_reloads_total", Help: "Config reloads (SIGHUP) by result.",
	}, []string{"result"})
	m.ConfigLastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "poller_config_last_reload_successful", Help: "1 if the last config reload succeeded.",
	})
	m.Registry.MustRegister(m.ConfigReloadsTotal, m.ConfigLastReloadOK)

	m.AccountUp = m.gauges("poller_account_up", "1 if the account's last poll succeeded, 0 while its polls fail.")
	m.AccountLastSuccess = m.gauges("poller_account_last_success_timestamp_seconds",
		"Unix time of the account's last successful poll, read from the state file at start.")
	m.WebhookOldest = newPendingAges(time.Now)
	m.perAccountVec(m.WebhookOldest, "account", "webhook")
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "poller_build_info", Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "go_version"})
	buildInfo.WithLabelValues(version.String(), runtime.Version()).Set(1)
	m.Registry.MustRegister(buildInfo)
	return m
}

// counters makes and registers a per-account counter vector.
func (m *Metrics) counters(name, help string, labels ...string) *CounterVec {
	all := append([]string{"account"}, labels...)
	v := &CounterVec{newFamily(counterKind, name, help, all, nil)}
	m.perAccountVec(v, all...)
	return v
}

// gauges makes and registers a per-account gauge vector.
func (m *Metrics) gauges(name, help string, labels ...string) *GaugeVec {
	all := append([]string{"account"}, labels...)
	v := &GaugeVec{newFamily(gaugeKind, name, help, all, nil)}
	m.perAccountVec(v, all...)
	return v
}

// perAccountVec registers v and remembers it for ForgetAccount.
func (m *Metrics) perAccountVec(v interface {
	prometheus.Collector
	DeletePartialMatch(prometheus.Labels) int
}, labels ...string) {
	m.Registry.MustRegister(v)
	m.perAccount = append(m.perAccount, accountVec{vec: v, labels: labels})
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// APIObserver returns the retailcrm.Options.Observe hook of an account:
// every API answer counted in poller_api_requests_total.
func (m *Metrics) APIObserver(account string) func(endpoint string, code int) {
	type key struct {
		endpoint string
		code     int
	}
	var mu sync.Mutex
	seen := map[key]prometheus.Counter{} // a series is looked up once per account
	return func(endpoint string, code int) {
		k := key{endpoint, code}
		mu.Lock()
		c, ok := seen[k]
		if !ok {
			c = m.APIRequestsTotal.WithLabelValues(account, endpoint, strconv.Itoa(code))
			seen[k] = c
		}
		mu.Unlock()
		c.Inc()
	}
}

// ForgetAccount removes every series of an account after it leaves the
// config.
func (m *Metrics) ForgetAccount(account string) {
	for _, v := range m.perAccount {
		v.vec.DeletePartialMatch(prometheus.Labels{"account": account})
	}
}
