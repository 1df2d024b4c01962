package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/logging"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/poll"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

const replayArgs = "-config FILE -account A -from TIME [-to TIME] [-webhook W]"

// cmdReplay sends a past window of an account's transitions again: for a
// receiver that lost data. It reads the history itself (at half the
// account's rate_limit, since the daemon shares the key) and hands the
// events to the running daemon, or to the state file when none runs.
func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("replay", replayArgs, stderr)
	configFlag(fs)
	name := fs.String("account", "", "the `account` whose history is replayed")
	fromFlag := fs.String("from", "", "start of the window, RFC 3339 (`TIME`, e.g. 2026-11-30T08:00:00Z)")
	toFlag := fs.String("to", "", "end of the window, RFC 3339 (`TIME`; default: when the command starts, so the window is closed)")
	webhook := fs.String("webhook", "", "only this `webhook` (default: every webhook of the account)")
	var from, to time.Time
	window := func() (err error) {
		from, to, err = replayWindow(*fromFlag, *toFlag, time.Now())
		return err
	}
	cfg, code, ok := parseAndLoad(fs, args, stderr, flagRules{required: []string{"account"}, check: window})
	if !ok {
		return code
	}
	acct, ok := configuredAccount(fs, stderr, cfg, *name)
	if !ok {
		return exitUsage
	}
	var webhooks []string
	for _, w := range acct.Webhooks {
		if *webhook == "" || w.Name == *webhook {
			webhooks = append(webhooks, w.Name)
		}
	}
	if len(webhooks) == 0 {
		fmt.Fprintf(stderr, "poller replay: account %s has no webhook %q in %s\n", acct.Name, *webhook, cfg.Path)
		return exitUsage
	}

	p, err := historyReader(cfg, *acct, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "poller replay: %v\n", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Fprintf(stdout, "replaying %s from %s to %s to webhooks %s\n", acct.Name,
		from.Format(time.RFC3339), to.Format(time.RFC3339), strings.Join(webhooks, ", "))
	queued := 0
	res, err := p.Replay(ctx, from, to, func(evs []store.NewEvent) error {
		// An event that names its webhooks (a condition's, or the status
		// events' beside conditions) goes to the replayed ones among them.
		evs = slices.DeleteFunc(evs, func(ne store.NewEvent) bool {
			return ne.Webhooks != nil && !slices.ContainsFunc(ne.Webhooks, func(w string) bool { return slices.Contains(webhooks, w) })
		})
		if len(evs) == 0 {
			return nil
		}
		actx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		n, err := admin.Replay(actx, cfg, acct.Name, webhooks, evs)
		if err != nil {
			return err
		}
		queued += n
		for _, ne := range evs {
			ch := ne.Event.Change
			if ne.Event.Type == event.Changed {
				fmt.Fprintf(stdout, "queued %s  order %d  %s  at %s  to %s\n", ne.Event.ID, ne.OrderID,
					strings.Join(setFields(ne.Event), ", "), ch.CreatedAt, strings.Join(ne.Webhooks, ", "))
				continue
			}
			fmt.Fprintf(stdout, "queued %s  order %d  %s -> %s  at %s\n", ne.Event.ID, ne.OrderID, dash(ch.OldValue), ch.NewValue, ch.CreatedAt)
		}
		return nil
	})
	if err != nil {
		note := ""
		if errors.Is(err, store.ErrNotConfigured) {
			note = " (the running daemon's config does not have that webhook: reload it first)"
		}
		fmt.Fprintf(stderr, "poller replay: %v%s; %d events queued before it\n", err, note, queued)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%d events queued from %d history entries", queued, res.Entries)
	if res.Skipped > 0 {
		fmt.Fprintf(stdout, " (%d entries without a readable id passed over)", res.Skipped)
	}
	fmt.Fprintln(stdout)
	return exitOK
}

// replayWindow parses -from and -to: -from required, -to by default the
// time the command starts (a replay window is never open-ended), from
// before to, to not in the future (what happens from now on, the poll
// sends).
func replayWindow(fromText, toText string, now time.Time) (from, to time.Time, err error) {
	if fromText == "" {
		return from, to, errors.New("-from is required: a replay window has a start")
	}
	fields := []struct {
		name, text string
		t          *time.Time
	}{{"-from", fromText, &from}, {"-to", toText, &to}}
	if toText == "" {
		to, toText, fields = now, now.UTC().Format(time.RFC3339), fields[:1] // the window ends when the command starts
	}
	for _, f := range fields {
		if *f.t, err = time.Parse(time.RFC3339, f.text); err != nil {
			return from, to, fmt.Errorf("%s %q is not an RFC 3339 time (e.g. 2026-11-30T08:00:00Z)", f.name, f.text)
		}
	}
	switch {
	case !from.Before(to):
		return from, to, fmt.Errorf("-from %s is not before -to %s", fromText, toText)
	case to.After(now):
		return from, to, fmt.Errorf("-to %s is in the future: what happens from now on, the poll sends", toText)
	}
	return from, to, nil
}

// historyReader is the poller that replay and when read an account's
// history with, beside the daemon: no state file, its own metrics, and
// half the account's rate_limit, since it shares the key with the daemon.
func historyReader(cfg *config.Config, acct config.Account, stderr io.Writer) (*poll.Poller, error) {
	log := logging.New(cfg.Log, stderr).With("account", acct.Name)
	opts := retailcrm.AccountOptions(acct)
	opts.Logger, opts.UserAgent = log, version.UserAgent()
	opts.RateLimit = max(acct.RateLimit/2, 1)
	client, err := retailcrm.New(opts)
	if err != nil {
		return nil, err
	}
	return poll.New(acct, client, nil, metrics.New(), log, nil), nil
}
