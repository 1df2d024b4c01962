package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// httpHandler serves /metrics, /healthz (the store answers) and /readyz
// (every account polled successfully within three intervals).
func (d *daemon) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.st.Ping(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "store: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if stale := d.stale(time.Now()); len(stale) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "stale accounts (no successful poll within 3 intervals): %s\n", strings.Join(stale, ", "))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// gaugeLoop refreshes the outbox and dead-letter gauges until ctx ends.
func (d *daemon) gaugeLoop(ctx context.Context) {
	t := time.NewTicker(gaugeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.refreshGauges()
		}
	}
}

// queuesChanged is told by the admin socket that an account's queues
// changed ("" any account's): delivery looks at them and the gauges show
// them at once.
func (d *daemon) queuesChanged(account string) {
	if account == "" {
		d.refreshGauges()
		return
	}
	d.disp.Notify(account)
	if pending, dead, err := d.st.Counts(account); err == nil {
		d.m.OutboxPending.WithLabelValues(account).Set(float64(pending))
		d.m.DeadLetters.WithLabelValues(account).Set(float64(dead))
	}
}

// refreshGauges sets poller_outbox_pending, poller_dead_letters and
// poller_webhook_oldest_pending_seconds of every configured account from
// the store.
func (d *daemon) refreshGauges() {
	d.mu.Lock()
	accts := d.cfg.Accounts
	d.mu.Unlock()
	overviews, err := d.st.Overviews(false)
	if err != nil {
		d.log.Warn("reading outbox counts", "error", err)
		return
	}
	oldest, err := d.st.OldestPending()
	if err != nil {
		d.log.Warn("reading the oldest pending events", "error", err)
	}
	for _, a := range accts {
		pending, dead := overviews[a.Name].Totals()
		d.m.OutboxPending.WithLabelValues(a.Name).Set(float64(pending))
		d.m.DeadLetters.WithLabelValues(a.Name).Set(float64(dead))
		if err == nil {
			hooks := make([]string, len(a.Webhooks))
			for i, w := range a.Webhooks {
				hooks[i] = w.Name
			}
			d.m.WebhookOldest.Set(a.Name, hooks, oldest[a.Name])
		}
	}
}
