package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/retailcrm-poller/retailcrm-poller/internal/check"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "-config FILE [-online]", stderr)
	configFlag(fs)
	online := fs.Bool("online", false, "also check each account's API key, statuses and sites against RetailCRM")
	cfg, code, ok := parseAndLoad(fs, args, stderr, flagRules{})
	if !ok {
		return code
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintln(stdout, check.Summary(cfg))
	if !*online {
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := check.Online(ctx, cfg, stdout, check.Options{UserAgent: version.UserAgent()}); err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	return exitOK
}
