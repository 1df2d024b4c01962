package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// removedEvery is how often the pending events of accounts that left the
// config are looked at (their deadline is hours away).
const removedEvery = time.Minute

// removedChunk bounds the items dead-lettered in one transaction.
const removedChunk = 500

// defaultMaxAge is retry.max_age's default, the least grace a removed
// account gets when the config that last had it is unknown.
const defaultMaxAge = 72 * time.Hour

// removedAccounts keeps the pending events of accounts that left the
// config from staying in the file forever, without dropping them on a
// mere typo in a reload: an account is marked removed (durably: a restart
// keeps the deadline) and its pending events are dead-lettered, reason
// store.ReasonAccountRemoved, once the longest retry.max_age of its
// webhooks in old, the last config that had it, has passed (unknown, as at
// start or when old is nil: the longest of cfg's webhooks, at least the
// default 72h). An account back in the config loses its mark and delivery
// resumes. Runs in the serve goroutine (and at start), never beside a
// reload; the periodic check passes old = cfg, so it reads the state of
// removed accounts only, not that of every configured one.
func (d *daemon) removedAccounts(cfg, old *config.Config, now time.Time) {
	overviews, err := d.st.Overviews(false)
	if err != nil {
		d.log.Warn("reading the accounts in the state file", "error", err)
		return
	}
	configuredNow, before := accountsByName(cfg), accountsByName(old)
	for name, o := range overviews {
		_, configured := configuredNow[name]
		pending, _ := o.Totals()
		if old != nil && configured {
			if _, was := before[name]; was {
				continue // configured before and now: no mark to clear
			}
		}
		if !configured && pending == 0 {
			continue
		}
		log := d.log.With("account", name)
		state, err := d.st.State(name)
		if err != nil {
			log.Warn("reading the account's state", "error", err)
			continue
		}
		removal := state.Removed
		if configured {
			if !removal.IsZero() {
				if err := d.st.ClearRemoved(name); err != nil {
					log.Warn("clearing the account's removal", "error", err)
					continue
				}
				log.Info("account back in the config; its pending events are delivered again")
			}
			continue
		}
		if removal.IsZero() {
			grace := max(longestMaxAge(cfg.Accounts...), defaultMaxAge)
			if old != nil {
				if a, ok := before[name]; ok {
					grace = longestMaxAge(*a)
				}
			}
			if removal, err = d.st.MarkRemoved(name, now, now.Add(grace)); err != nil {
				log.Warn("recording the account's removal", "error", err)
				continue
			}
			log.Warn("account not in the config; its pending events are kept until the deadline, then dead-lettered, unless it returns",
				"pending", pending, "deadline", removal.Deadline.Format(time.RFC3339), "reason", store.ReasonAccountRemoved)
		}
		if now.Before(removal.Deadline) {
			continue
		}
		d.deadLetterRemoved(log, name, now)
	}
}

// deadLetterRemoved dead-letters every pending event of a removed account.
func (d *daemon) deadLetterRemoved(log *slog.Logger, name string, now time.Time) {
	total := 0
	for {
		items, err := d.st.DeadLetterPending(name, store.ReasonAccountRemoved, now, removedChunk)
		if err != nil {
			log.Warn("dead-lettering the removed account's pending events", "error", err)
			break
		}
		if len(items) == 0 {
			break
		}
		total += len(items)
		if d.mailer != nil {
			for _, it := range items {
				d.mailer.DeadLetter(context.Background(), it)
			}
		}
	}
	if total > 0 {
		log.Warn("account removed from the config; its pending events were dead-lettered", "count", total, "reason", store.ReasonAccountRemoved)
	}
}

// longestMaxAge is the longest retry.max_age of the accounts' webhooks.
func longestMaxAge(accts ...config.Account) time.Duration {
	var d time.Duration
	for _, a := range accts {
		for _, w := range a.Webhooks {
			d = max(d, w.Retry.MaxAge)
		}
	}
	return d
}

// accountsByName indexes cfg's accounts (none for a nil cfg): the check
// looks up every account of the state file, 10,000 of them on a large
// instance, where a scan of the list per name cost a tenth of the CPU.
func accountsByName(cfg *config.Config) map[string]*config.Account {
	if cfg == nil {
		return nil
	}
	m := make(map[string]*config.Account, len(cfg.Accounts))
	for i := range cfg.Accounts {
		m[cfg.Accounts[i].Name] = &cfg.Accounts[i]
	}
	return m
}
