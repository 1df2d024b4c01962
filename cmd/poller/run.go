package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/daemon"
	"github.com/retailcrm-poller/retailcrm-poller/internal/logging"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

func cmdRun(args []string, _, stderr io.Writer) int {
	fs := newFlagSet("run", "-config FILE", stderr)
	path := fs.String("config", "", "config `file` (YAML)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if code, ok := requireConfig(fs, stderr, *path, false); !ok {
		return code
	}
	// Load once here so an invalid config exits 2 before anything starts and
	// the logger gets its configured level and format.
	cfg, code, ok := loadConfig(*path, stderr)
	if !ok {
		return code
	}
	log := logging.New(cfg.Log, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	reload := forwardHUP(ctx)

	err := daemon.Run(ctx, daemon.Options{
		ConfigPath: *path,
		Version:    version.String(),
		Logger:     log,
		Reload:     reload,
	})
	switch {
	case err == nil:
		return exitOK
	case isConfigError(err):
		log.Error("invalid config", "error", err)
		return exitUsage
	default:
		log.Error("poller failed", "error", err)
		return exitFailure
	}
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

// isConfigError reports whether err comes from loading or validating the
// config (exit code 2) rather than from running (exit code 1).
func isConfigError(err error) bool {
	var ce *config.Error
	return errors.As(err, &ce)
}
