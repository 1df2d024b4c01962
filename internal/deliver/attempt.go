package deliver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// removeChunk is how many pending events of a removed webhook one
// transaction dead-letters, so memory stays bounded for a long queue.
const removeChunk = 1000

// record stores the outcome of an attempt made at now (sendErr nil: a
// success), counts, logs and alerts, then reports the result. The store
// write comes first: the scheduler hands out the order's next event, or
// this one again, only after it. A success's mark does not wait for its
// transaction (store.Delivered): report may then run later, on the
// goroutine that committed it, so it must not block. The attempt goes to
// the event's attempt log in the transaction of its outcome.
func (d *Dispatcher) record(w *work, res Result, sendErr error, now time.Time, report func(result)) {
	if sendErr != nil {
		r := d.failed(w, res, sendErr, now)
		r.failed, r.at = true, now
		report(r)
		return
	}
	it := w.item
	d.st.Delivered(it.Account, it.Webhook, it.Seq, logged(it, it.Attempts+1, res, nil, now), func(err error) {
		r := result{w: w, kind: finished, ok: true, at: now}
		if err != nil {
			// The event stays in the outbox and is sent again: a
			// duplicate, never a loss.
			w.log.Error("cannot mark the event delivered; it will be sent again", "event_id", it.Event.ID, "error", err)
			r.kind = storeFailed
		} else {
			w.series.ok.Inc()
			w.series.latency.Observe(d.now().Sub(it.DetectedAt).Seconds())
		}
		report(r)
	})
}

// failed stores a failed attempt's outcome: a retry or a dead letter.
func (d *Dispatcher) failed(w *work, res Result, sendErr error, now time.Time) result {
	it := w.item
	reason := decide(w.wh, &it, res, sendErr, now, d.opts.Backoff)
	it.Log = logged(it, it.Attempts, res, sendErr, now)
	if reason == "" {
		if err := d.st.Reschedule(it); err != nil {
			return d.storeError(w, err)
		}
		w.series.retry.Inc()
		w.log.Warn("delivery failed, will retry", "event_id", it.Event.ID, "attempt", it.Attempts,
			"status", res.Status, "error", sendErr, "next_attempt", it.NextAttempt)
		return result{w: w, kind: finished}
	}
	if err := d.st.DeadLetter(reason, now, it); err != nil {
		return d.storeError(w, err)
	}
	it.DeadAt, it.DeadReason = now, reason
	w.series.dead.Inc()
	w.log.Error("event dead-lettered", "event_id", it.Event.ID, "reason", reason,
		"attempts", it.Attempts, "status", it.LastStatus, "error", it.LastError)
	d.alert(it)
	return result{w: w, kind: finished}
}

// storeError handles a failed outcome write: an item that left the outbox
// meanwhile (an operator dropped or dead-lettered it) is done with; any
// other error leaves the item as it was, due again after storeRetry.
func (d *Dispatcher) storeError(w *work, err error) result {
	if errors.Is(err, store.ErrNotFound) {
		w.log.Info("event left the outbox while being delivered", "event_id", w.item.Event.ID)
		return result{w: w, kind: finished}
	}
	w.log.Error("cannot store the attempt's outcome; the event will be sent again", "event_id", w.item.Event.ID, "error", err)
	return result{w: w, kind: storeFailed}
}

// logged is the attempt log's record of attempt number n of it, made at
// now. sendErr is Send's error, which carries no URL or secret.
func logged(it store.Item, n int, res Result, sendErr error, now time.Time) *store.Attempt {
	a := &store.Attempt{At: now, Webhook: it.Webhook, Number: n, Status: res.Status, Latency: res.Duration, Response: res.Body}
	if sendErr != nil {
		a.Error = sendErr.Error()
	}
	return a
}

// decide updates it's attempt bookkeeping after a failed attempt at now and
// returns the dead-letter reason, or "" with it.NextAttempt set. The wait
// is max(backoff with jitter, Retry-After), and no attempt is ever
// scheduled after first attempt + max_age: a backoff that would go past it
// is cut to that instant (one last attempt), and a Retry-After asking to
// wait past it dead-letters the event at once.
func decide(wh config.Webhook, it *store.Item, res Result, sendErr error, now time.Time, backoff func(int) time.Duration) (reason string) {
	if it.FirstAttempt.IsZero() {
		it.FirstAttempt = now
	}
	it.Attempts++
	it.LastStatus = res.Status
	it.LastError = sendErr.Error()
	switch {
	case res.Status == http.StatusGone:
		return ReasonGone
	case wh.Retry.MaxAttempts > 0 && it.Attempts >= wh.Retry.MaxAttempts:
		return ReasonMaxAttempts
	}
	next := now.Add(max(jitter(backoff(it.Attempts)), res.RetryAfter))
	if wh.Retry.MaxAge > 0 {
		end := it.FirstAttempt.Add(wh.Retry.MaxAge)
		switch {
		case !now.Before(end):
			return ReasonMaxAge
		case now.Add(res.RetryAfter).After(end):
			it.LastError += fmt.Sprintf(" (Retry-After %s: past max_age %s)", res.RetryAfter, wh.Retry.MaxAge)
			return ReasonMaxAge
		case next.After(end):
			next = end
		}
	}
	it.NextAttempt = next
	return ""
}

// removeChunk dead-letters up to removeChunk pending events of a webhook
// that left the config, in one transaction, and alerts about each.
func (d *Dispatcher) removeChunk(w *work) result {
	items, err := d.st.Pending(w.key.account, w.key.webhook, 0, removeChunk)
	if err != nil {
		w.log.Error("cannot read the removed webhook's queue; retrying", "error", err)
		return result{w: w, kind: storeFailed}
	}
	if len(items) == 0 {
		return result{w: w, kind: finished}
	}
	now := d.now()
	if err := d.st.DeadLetter(ReasonRemoved, now, items...); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return result{w: w, kind: finished, more: true} // something moved meanwhile: read again
		}
		w.log.Error("cannot dead-letter the removed webhook's events; retrying", "error", err)
		return result{w: w, kind: storeFailed}
	}
	w.log.Warn("webhook removed from the config; its pending events were dead-lettered",
		"count", len(items), "reason", ReasonRemoved)
	for _, it := range items {
		it.DeadAt, it.DeadReason = now, ReasonRemoved
		d.alert(it)
	}
	return result{w: w, kind: finished, more: len(items) == removeChunk}
}

// gauges sets the account's outbox and dead-letter gauges from the
// counters; the loop calls it right after outcomes changed them.
func (d *Dispatcher) gauges(account string) {
	pending, dead, err := d.st.Counts(account)
	if err != nil {
		d.log.Warn("cannot read the outbox counters", "account", account, "error", err)
		return
	}
	d.m.OutboxPending.WithLabelValues(account).Set(float64(pending))
	d.m.DeadLetters.WithLabelValues(account).Set(float64(dead))
}

func (d *Dispatcher) alert(it store.Item) {
	if d.opts.Alerter != nil {
		d.opts.Alerter.DeadLetter(d.baseCtx, it)
	}
}
