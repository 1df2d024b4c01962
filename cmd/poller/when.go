package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

const whenArgs = "-config FILE -account A [-since DURATION] ['EXPR']"

// whenName is the webhook name an expression given on the command line is
// evaluated under.
const whenName = "EXPR"

// cmdWhen shows what a condition would have sent: it evaluates an
// expression (or, without one, each configured webhook's when) over the
// account's recent history and prints the change sets it holds for. It
// reads the API only (at half the account's rate_limit, as the daemon
// shares the key) and never the state file, so it runs beside the daemon.
func cmdWhen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("when", whenArgs, stderr)
	configFlag(fs)
	name := fs.String("account", "", "the `account` whose history is read")
	since := fs.Duration("since", 24*time.Hour, "how far back to read (`DURATION`)")
	check := func() error {
		switch {
		case *since <= 0:
			return errors.New("-since must be positive")
		case fs.NArg() > 1:
			return errors.New("one expression at most (quote it)")
		}
		return nil
	}
	cfg, code, ok := parseAndLoad(fs, args, stderr, flagRules{required: []string{"account"}, allowArgs: true, check: check})
	if !ok {
		return code
	}
	configured, ok := configuredAccount(fs, stderr, cfg, *name)
	if !ok {
		return exitUsage
	}
	acct := *configured
	if src := fs.Arg(0); src != "" {
		c, err := condition.Compile(src)
		if err != nil {
			fmt.Fprintf(stderr, "poller when: bad expression: %v\n", err)
			return exitUsage
		}
		for _, f := range c.UnknownFields() {
			fmt.Fprintf(stderr, "poller when: warning: %q is not a field of the order history, so it never changes\n", f)
		}
		acct.Webhooks = []config.Webhook{{Name: whenName, When: c}}
	} else {
		acct.Webhooks = nil
		for _, w := range configured.Webhooks {
			if w.When != nil {
				acct.Webhooks = append(acct.Webhooks, w)
			}
		}
		if len(acct.Webhooks) == 0 {
			fmt.Fprintf(stderr, "poller when: account %s has no webhook with when in %s; give an expression\n", acct.Name, cfg.Path)
			return exitUsage
		}
	}

	p, err := historyReader(cfg, acct, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "poller when: %v\n", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	to := time.Now()
	from := to.Add(-*since)
	fmt.Fprintf(stdout, "reading %s's history from %s to %s\n", acct.Name, from.Format(time.RFC3339), to.Format(time.RFC3339))
	matched := 0
	res, err := p.Replay(ctx, from, to, func(evs []store.NewEvent) error {
		for _, ne := range evs {
			matched++
			printMatch(stdout, ne, len(acct.Webhooks) > 1)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "poller when: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%d change sets matched, from %d history entries\n", matched, res.Entries)
	return exitOK
}

// printMatch prints one matching change set: event id, time, order, the
// fields it changed and, with several conditions, which held.
func printMatch(w io.Writer, ne store.NewEvent, which bool) {
	fmt.Fprintf(w, "%s  %s  order %d  %s", ne.Event.ID, ne.Event.Change.CreatedAt, ne.OrderID, strings.Join(setFields(ne.Event), ", "))
	if which {
		fmt.Fprintf(w, "  -> %s", strings.Join(ne.Webhooks, ", "))
	}
	if ne.Event.OrderMissing {
		fmt.Fprint(w, "  (order no longer returned by the API)")
	}
	fmt.Fprintln(w)
}

// setFields lists the fields an order.changed event's save changed.
func setFields(ev event.Event) []string {
	fields := make([]string, 0, len(ev.ChangeSet))
	for _, e := range ev.ChangeSet {
		fields = append(fields, e.Field)
	}
	return fields
}

// changeText is an event's change in one column: "old -> new" for a
// status event, the fields its save changed for order.changed.
func changeText(ev event.Event) string {
	if ev.Type == event.Changed {
		return strings.Join(setFields(ev), ", ")
	}
	return dash(ev.Change.OldValue) + " -> " + ev.Change.NewValue
}
