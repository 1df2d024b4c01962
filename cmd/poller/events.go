package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

const eventsArgs = "show -config FILE [-account A] [-json] EVENT_ID"

// cmdEvents is `poller events show ID`: an event, where it waits, and its
// attempt log, from the running daemon or the state file.
func cmdEvents(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "show" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintf(stdout, "Usage: poller events %s\n", eventsArgs)
			return exitOK
		}
		fmt.Fprintf(stderr, "Usage: poller events %s\n", eventsArgs)
		return exitUsage
	}
	fs := newFlagSet("events show", strings.TrimPrefix(eventsArgs, "show "), stderr)
	configFlag(fs)
	account := fs.String("account", "", "look for the event in this `account` only (default: every account)")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	cfg, code, ok := parseAndLoad(fs, args[1:], stderr, flagRules{allowArgs: true, check: func() error {
		if fs.NArg() != 1 {
			return errors.New("want exactly one EVENT_ID")
		}
		return nil
	}})
	if !ok {
		return code
	}
	ctx, stop := adminContext()
	defer stop()
	ev, err := admin.Event(ctx, cfg, *account, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "poller events show: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		return writeJSON(stdout, stderr, ev)
	}
	if err := printEvent(stdout, ev); err != nil {
		fmt.Fprintf(stderr, "poller events show: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// printEvent writes the event, its queues and its attempt log as text.
func printEvent(w io.Writer, ev store.EventLog) error {
	ch := ev.Event.Change
	fmt.Fprintf(w, "event     %s (%s)\n", ev.Event.ID, ev.Event.Type)
	fmt.Fprintf(w, "account   %s, order %d, detected %s\n", ev.Account, ev.OrderID, utc(ev.DetectedAt))
	fmt.Fprintf(w, "change    %s: %s -> %s (history id %d, %s)\n", ch.Field, dash(ch.OldValue), ch.NewValue, ch.HistoryID, ch.CreatedAt)
	for _, q := range ev.Queues {
		switch q.State {
		case "dead":
			fmt.Fprintf(w, "webhook   %s: dead since %s (%s) after %d attempts\n", q.Webhook, utc(q.DeadAt), q.DeadReason, q.Attempts)
		default:
			next := "now"
			if !q.NextAttempt.IsZero() {
				next = utc(q.NextAttempt)
			}
			fmt.Fprintf(w, "webhook   %s: pending, %d attempts, next %s\n", q.Webhook, q.Attempts, next)
		}
	}
	fmt.Fprintln(w)
	if len(ev.Attempts) == 0 {
		fmt.Fprintln(w, "no attempts yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWEBHOOK\tATTEMPT\tSTATUS\tLATENCY\tRESPONSE / ERROR")
	for _, a := range ev.Attempts {
		status := "-"
		if a.Status != 0 {
			status = fmt.Sprint(a.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", utc(a.At), a.Webhook, a.Number, status,
			a.Latency.Round(time.Millisecond/10), oneLine(attemptText(a)))
	}
	return tw.Flush()
}

// attemptText is what an attempt's line shows: the error, else the answer.
func attemptText(a store.Attempt) string {
	switch {
	case a.Error != "" && a.Response != "":
		return a.Error + "; response: " + a.Response
	case a.Error != "":
		return a.Error
	}
	return dash(a.Response)
}

// oneLine keeps a receiver's multi-line answer on its table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }
