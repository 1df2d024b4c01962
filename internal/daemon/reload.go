package daemon

import (
	"context"
	"strings"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

// reload loads the config file again and swaps it in whole: removed and
// changed accounts leave cron, added and changed ones are scheduled (a
// changed one keeps its poll history and backoff). A config that does not
// load, or an account that cannot be set up, leaves everything as it was.
// state_dir, listen, admin_socket and the log and alerts sections are read
// at start only.
func (d *daemon) reload(polls context.Context) {
	notify(d.log, sdReloading())
	defer notify(d.log, sdReady)
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()

	cfg, err := config.Load(d.path)
	var added []*account
	if err == nil {
		added, err = d.prepare(changedAccounts(old, cfg))
	}
	if err != nil {
		d.log.Error("config reload failed; keeping the running config", "error", err)
		d.m.ConfigReloadsTotal.WithLabelValues("error").Inc()
		d.m.ConfigLastReloadOK.Set(0)
		return
	}
	d.keepStartOnly(old, cfg)

	keep := make(map[string]bool, len(added))
	for _, a := range added {
		keep[a.cfg.Name] = true
	}
	var removed []*account
	d.mu.Lock()
	for name, a := range d.accounts {
		_, still := cfg.Account(name)
		if !still || keep[name] {
			d.slots.remove(a.slot)
		}
		if !still {
			delete(d.accounts, name)
			removed = append(removed, a)
		} else if !keep[name] {
			a.poller.RefreshZone() // a reload reads the account's time zone again
		}
	}
	d.cfg = cfg
	d.mu.Unlock()

	// Delivery learns the new webhooks before the new pollers can enqueue.
	d.disp.Update(cfg.Accounts)
	d.schedule(polls, added, time.Now())
	for _, a := range removed {
		// After a poll still running for it, which would set its series again.
		go func() {
			a.run.Lock()
			defer a.run.Unlock()
			d.m.ForgetAccount(a.cfg.Name)
		}()
	}
	if d.admin != nil {
		d.admin.SetConfig(cfg)
	}
	d.refreshGauges()
	d.log.Info("config reloaded", "accounts", len(cfg.Accounts), "added_or_changed", len(added), "removed", len(removed))
	d.removedAccounts(cfg, old, time.Now())
	d.warnFromEnv(cfg)
	// Counted last: whoever waits on the count sees everything the reload
	// did and logged.
	d.m.ConfigReloadsTotal.WithLabelValues("ok").Inc()
	d.m.ConfigLastReloadOK.Set(1)
}

// warnFromEnv names each secret or URL the reloaded config takes from an
// environment variable: the process reads its environment once, at start,
// so the reload used the value it started with. Whether the operator
// changed the variable (in the unit's EnvironmentFile, say) cannot be
// known from here, hence "if".
func (d *daemon) warnFromEnv(cfg *config.Config) {
	for _, f := range cfg.FromEnv {
		attrs := []any{"account", f.Account}
		if f.Webhook != "" {
			attrs = append(attrs, "webhook", f.Webhook)
		}
		attrs = append(attrs, "key", f.Key, "variables", strings.Join(f.Vars, " "))
		d.log.Warn("reload kept the value this variable had when the daemon started; if it changed, restart to use it", attrs...)
	}
}

// changedAccounts returns the accounts of cfg that are new or differ from
// their version in old.
func changedAccounts(old, cfg *config.Config) []config.Account {
	var out []config.Account
	for _, a := range cfg.Accounts {
		if prev, ok := old.Account(a.Name); !ok || !prev.Equal(a) {
			out = append(out, a)
		}
	}
	return out
}

// keepStartOnly puts the running values of start-only settings into cfg,
// warning about each that the new file changes.
func (d *daemon) keepStartOnly(old, cfg *config.Config) {
	warn := func(key string) {
		d.log.Warn("config change needs a restart to take effect", "key", key)
	}
	if cfg.StateDir != old.StateDir {
		warn("state_dir")
		cfg.StateDir = old.StateDir
	}
	if cfg.Listen != old.Listen {
		warn("listen")
		cfg.Listen = old.Listen
	}
	if cfg.AdminSocket != old.AdminSocket {
		warn("admin_socket")
		cfg.AdminSocket = old.AdminSocket
	}
	if cfg.Log != old.Log {
		warn("log")
	}
	if !old.Alerts.Equal(cfg.Alerts) {
		warn("alerts")
	}
}
