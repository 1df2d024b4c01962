package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PendingAges is poller_webhook_oldest_pending_seconds{account,webhook}.
// It keeps the detection time of each queue's oldest pending event and
// reports its age at scrape time, so the age grows between two reads of
// the store instead of standing still; 0 for a webhook with nothing
// pending.
type PendingAges struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu     sync.Mutex
	oldest map[string]map[string]time.Time // account -> webhook -> detection time (zero: none pending)
}

func newPendingAges(now func() time.Time) *PendingAges {
	return &PendingAges{
		desc: prometheus.NewDesc("poller_webhook_oldest_pending_seconds",
			"Seconds since the oldest event still pending for the webhook was detected; 0 with none pending.",
			[]string{"account", "webhook"}, nil),
		now:    now,
		oldest: map[string]map[string]time.Time{},
	}
}

// Set replaces the account's webhooks: each of webhooks gets the time in
// oldest (none: nothing pending), and a webhook of the account not in
// webhooks (removed from the config) loses its series.
func (p *PendingAges) Set(account string, webhooks []string, oldest map[string]time.Time) {
	m := make(map[string]time.Time, len(webhooks))
	for _, w := range webhooks {
		m[w] = oldest[w]
	}
	p.mu.Lock()
	p.oldest[account] = m
	p.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (p *PendingAges) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect implements prometheus.Collector.
func (p *PendingAges) Collect(ch chan<- prometheus.Metric) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for account, hooks := range p.oldest {
		for webhook, t := range hooks {
			age := 0.0
			if !t.IsZero() {
				age = max(now.Sub(t).Seconds(), 0) // a clock stepped back reads as just detected
			}
			ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, age, account, webhook)
		}
	}
}

// DeletePartialMatch drops the series matching labels (account and, if
// given, webhook); it returns how many went. ForgetAccount uses it.
func (p *PendingAges) DeletePartialMatch(labels prometheus.Labels) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for account, hooks := range p.oldest {
		if a, ok := labels["account"]; ok && a != account {
			continue
		}
		for webhook := range hooks {
			if w, ok := labels["webhook"]; ok && w != webhook {
				continue
			}
			delete(hooks, webhook)
			n++
		}
		if len(hooks) == 0 {
			delete(p.oldest, account)
		}
	}
	return n
}
