package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

const dlqArgs = "list|retry|drop -config FILE [-account A] [-json] [EVENT_ID...]"

func cmdDLQ(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintf(stdout, "Usage: poller dlq %s\n", dlqArgs)
			return exitOK
		}
		fmt.Fprintf(stderr, "Usage: poller dlq %s\n", dlqArgs)
		return exitUsage
	}
	verb := args[0]
	fs := newFlagSet("dlq", dlqArgs, stderr)
	configFlag(fs)
	account := fs.String("account", "", "only this `account`'s dead letters (default: every account)")
	asJSON := fs.Bool("json", false, "list: print JSON instead of a table")
	switch verb {
	case "list", "retry", "drop":
	default:
		return usageError(fs, stderr, "unknown dlq command %q (want list, retry or drop)", verb)
	}
	cfg, code, ok := parseAndLoad(fs, args[1:], stderr, flagRules{allowArgs: verb != "list"})
	if !ok {
		return code
	}
	if *account != "" {
		if _, ok := cfg.Account(*account); !ok {
			fmt.Fprintf(stderr, "poller dlq: note: account %q is not in %s\n", *account, cfg.Path)
		}
	}
	ctx, stop := adminContext()
	defer stop()
	ids := fs.Args()
	switch verb {
	case "list":
		items, err := admin.DLQList(ctx, cfg, *account)
		if err != nil {
			return dlqFailed(stderr, err)
		}
		if *asJSON {
			return writeJSON(stdout, stderr, items)
		}
		return printDead(stdout, stderr, items)
	case "retry":
		items, err := admin.DLQRetry(ctx, cfg, *account, ids)
		if err != nil {
			return dlqFailed(stderr, err)
		}
		for _, it := range items {
			fmt.Fprintf(stdout, "retrying %s -> %s/%s\n", it.Event.ID, it.Account, it.Webhook)
		}
		fmt.Fprintf(stdout, "%d dead letters moved back to the outbox\n", len(items))
	default:
		n, pending, err := admin.DLQDrop(ctx, cfg, *account, ids)
		if err != nil {
			return dlqFailed(stderr, err)
		}
		fmt.Fprintf(stdout, "%d dead letters dropped\n", n)
		if pending > 0 {
			fmt.Fprintf(stdout, "%d of them were pending events of account %s, which is not in the config\n", pending, *account)
		}
	}
	return exitOK
}

// dlqFailed reports err; an unknown event id or a removed webhook's dead
// letter changed nothing, and says so.
func dlqFailed(stderr io.Writer, err error) int {
	note := ""
	switch {
	case errors.Is(err, store.ErrNotFound):
		note = " (nothing changed)"
	case errors.Is(err, store.ErrNotConfigured):
		note = " (nothing changed: its events never go to another webhook; add the webhook back under that name, or drop them with `poller dlq drop`)"
	}
	fmt.Fprintf(stderr, "poller dlq: %v%s\n", err, note)
	return exitFailure
}

func printDead(stdout, stderr io.Writer, items []store.Item) int {
	if len(items) == 0 {
		fmt.Fprintln(stdout, "no dead letters")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tACCOUNT\tWEBHOOK\tORDER\tCHANGE\tATTEMPTS\tDEAD AT\tREASON\tLAST STATUS\tLAST ERROR")
	for _, it := range items {
		status := "-"
		if it.LastStatus != 0 {
			status = fmt.Sprint(it.LastStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", it.Event.ID, it.Account, it.Webhook,
			it.OrderID, changeText(it.Event), it.Attempts,
			it.DeadAt.UTC().Format("2006-01-02 15:04:05Z"), dash(it.DeadReason), status, oneLine(dash(store.Clip(it.LastError))))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "poller dlq: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%d dead letters\n", len(items))
	return exitOK
}
