package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/poll"
)

// adminTimeout bounds a status or dlq command: the daemon answers from
// bbolt in milliseconds, so a slow answer means something is wrong.
const adminTimeout = 30 * time.Second

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "-config FILE [-json]", stderr)
	configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	cfg, code, ok := parseAndLoad(fs, args, stderr, flagRules{})
	if !ok {
		return code
	}
	ctx, stop := adminContext()
	defer stop()
	st, err := admin.Status(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "poller status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		return writeJSON(stdout, stderr, st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tCURSOR\tLAST SUCCESS\tLAST POLL\tPENDING\tDEAD\tWEBHOOKS (PENDING/DEAD)\tLAST SWEEP\tLAST ERROR")
	for _, s := range st {
		name := s.Account
		switch {
		case s.Removed != nil && s.Pending > 0:
			name += " (not in config; pending dead-lettered from " + s.Removed.Deadline.Format(time.RFC3339) + ")"
		case !s.Configured:
			name += " (not in config)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", name, s.Cursor,
			ago(s.LastSuccess), ago(s.LastPoll), s.Pending, s.Dead,
			dash(queues(s.Queues)), sweepText(s.LastSweep), dash(s.LastError))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "poller status: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// queues renders per-webhook counts: "app 3/0, old 0/5 (not in config)".
func queues(qs []admin.QueueStatus) string {
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = fmt.Sprintf("%s %d/%d", q.Webhook, q.Pending, q.Dead)
		if !q.Configured {
			parts[i] += " (not in config)"
		}
	}
	return strings.Join(parts, ", ")
}

// adminContext is the context of a status or dlq command: bounded, and
// cancelled by Ctrl-C.
func adminContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	return ctx, func() { cancel(); stop() }
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "poller: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// ago renders a time as RFC 3339 UTC with its age, or "-" when unknown.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339) + " (" + time.Since(t).Round(time.Second).String() + " ago)"
}

// sweepText summarises the last orders sweep.
func sweepText(r *poll.SweepResult) string {
	switch {
	case r == nil:
		return "-"
	case r.Error != "":
		return fmt.Sprintf("%s ago: failed", time.Since(r.At).Round(time.Second))
	}
	return fmt.Sprintf("%s ago: %d orders, %d checked, %d recovered",
		time.Since(r.At).Round(time.Second), r.Orders, r.Checked, r.Recovered)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
