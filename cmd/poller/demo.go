package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/demo"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "[-duration D]", stderr)
	d := fs.Duration("duration", 30*time.Second, "how long the simulator keeps changing orders (Ctrl-C stops early)")
	verbose := fs.Bool("v", false, "show the daemon's info logs")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected arguments")
	}
	if *d <= 0 {
		return usageError(fs, stderr, "-duration must be positive")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	_, err := demo.Run(ctx, demo.Options{
		Duration: *d,
		Out:      stdout,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		fmt.Fprintf(stderr, "poller demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}
