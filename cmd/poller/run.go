package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/retailcrm-poller/retailcrm-poller/internal/daemon"
	"github.com/retailcrm-poller/retailcrm-poller/internal/gcpace"
	"github.com/retailcrm-poller/retailcrm-poller/internal/logging"
)

func cmdRun(args []string, _, stderr io.Writer) int {
	fs := newFlagSet("run", "-config FILE", stderr)
	configFlag(fs)
	// Load once here so an invalid config exits 78 before anything starts and
	// the logger gets its configured level and format.
	cfg, code, ok := parseAndLoad(fs, args, stderr, flagRules{})
	if !ok {
		return code
	}
	log := logging.New(cfg.Log, stderr)
	defer gcpace.Start()()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	reload := forwardHUP(ctx)

	if err := daemon.Run(ctx, cfg, daemon.Options{ConfigPath: cfg.Path, Logger: log, Reload: reload}); err != nil {
		log.Error("poller failed", "error", err)
		return exitFailure
	}
	return exitOK
}

// forwardHUP turns SIGHUPs into reload requests until ctx ends. The channel
// holds one pending request: several SIGHUPs during a reload coalesce.
func forwardHUP(ctx context.Context) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	return reload
}
