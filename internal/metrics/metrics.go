// Package metrics defines the poller's Prometheus metrics (docs/REFERENCE.md,
// "Metrics"). One Metrics value is created per process and passed to the
// poll, delivery and daemon packages; tests create their own registry.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector. Label names are part of the contract.
type Metrics struct {
	Registry *prometheus.Registry

	PollsTotal         *prometheus.CounterVec   // account, result (ok|error)
	APIRequestsTotal   *prometheus.CounterVec   // account, endpoint, code
	EventsDetected     *prometheus.CounterVec   // account, type
	DeliveriesTotal    *prometheus.CounterVec   // account, webhook, result (ok|retry|dead)
	OutboxPending      *prometheus.GaugeVec     // account
	DeadLetters        *prometheus.GaugeVec     // account
	CursorHistoryID    *prometheus.GaugeVec     // account
	LastPollSuccess    *prometheus.GaugeVec     // account, unix seconds
	DeliveryLatency    *prometheus.HistogramVec // account, detection -> 2xx
	HistoryAnomalies   *prometheus.CounterVec   // account, kind: odd history input that was logged and skipped
	ReconciledEvents   *prometheus.CounterVec   // account: transitions the orders sweep found that the poll had missed
	PollInterval       *prometheus.GaugeVec     // account: the schedule's interval, so alerts can count missed polls
	ConfigReloadsTotal *prometheus.CounterVec   // result (ok|error)
	ConfigLastReloadOK prometheus.Gauge         // 1 if the last reload succeeded
}

// New registers every metric on a fresh registry, with the Go and process
// collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		PollsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poller_polls_total", Help: "Polls of an account's order history, by result (ok, error).",
		}, []string{"account", "result"}),
		APIRequestsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poller_api_requests_total", Help: "RetailCRM API requests by endpoint and HTTP status code (0: transport error).",
		}, []string{"account", "endpoint", "code"}),
		EventsDetected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poller_events_detected_total", Help: "Events written to the outbox, by type.",
		}, []string{"account", "type"}),
		DeliveriesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poller_deliveries_total", Help: "Delivery attempts by result (ok, retry, dead).",
		}, []string{"account", "webhook", "result"}),
		OutboxPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poller_outbox_pending", Help: "Events waiting for delivery (all webhooks).",
		}, []string{"account"}),
		DeadLetters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poller_dead_letters", Help: "Dead-lettered events (all webhooks).",
		}, []string{"account"}),
		CursorHistoryID: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poller_cursor_history_id", Help: "Highest order history id handled.",
		}, []string{"account"}),
		LastPollSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poller_last_poll_success_timestamp_seconds", Help: "Unix time of the last successful poll.",
		}, []string{"account"}),
		DeliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "poller_delivery_latency_seconds",
			Help:    "Time from detection (outbox commit) to a successful delivery.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
		}, []string{"account"}),
		HistoryAnomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poller_history_anomalies_total", Help: "Unexpected history input that was logged and skipped, by kind.",
		}, []string{"account", "kind"}),
		ReconciledEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poller_reconciled_events_total", Help: "Transitions the orders sweep found that the history poll had missed.",
		}, []string{"account"}),
		PollInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poller_poll_interval_seconds",
			Help: "Seconds between two scheduled polls of the account's history (for a cron spec, between its next two runs).",
		}, []string{"account"}),
		ConfigReloadsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poller_config_reloads_total", Help: "Config reloads (SIGHUP) by result.",
		}, []string{"result"}),
		ConfigLastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "poller_config_last_reload_successful", Help: "1 if the last config reload succeeded.",
		}),
	}
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.PollsTotal, m.APIRequestsTotal, m.EventsDetected, m.DeliveriesTotal,
		m.OutboxPending, m.DeadLetters, m.CursorHistoryID, m.LastPollSuccess,
		m.DeliveryLatency, m.HistoryAnomalies, m.ReconciledEvents, m.PollInterval,
		m.ConfigReloadsTotal, m.ConfigLastReloadOK,
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ForgetAccount removes an account's series after it leaves the config.
func (m *Metrics) ForgetAccount(account string) {
	l := prometheus.Labels{"account": account}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.PollsTotal, m.APIRequestsTotal, m.EventsDetected, m.DeliveriesTotal,
		m.OutboxPending, m.DeadLetters, m.CursorHistoryID, m.LastPollSuccess,
		m.DeliveryLatency, m.HistoryAnomalies, m.ReconciledEvents, m.PollInterval,
	} {
		v.DeletePartialMatch(l)
	}
}
