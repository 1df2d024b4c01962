// Package logging builds the poller's slog logger from the log config and
// adapts cron's logger to it. Under journald the time attribute is dropped:
// the journal stamps every line itself.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

// New returns a logger writing to w in c.Format ("json", else text) at
// c.Level, without timestamps when w goes to journald.
func New(c config.Log, w io.Writer) *slog.Logger {
	return newLogger(c, w, os.Getenv)
}

func newLogger(c config.Log, w io.Writer, getenv func(string) string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if underJournald(w, getenv) {
		opts.ReplaceAttr = dropTime
	}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// underJournald reports whether w is connected to the journal: systemd sets
// JOURNAL_STREAM to the "dev:ino" of the stream it hands the service. The
// comparison (as sd_journal_stream_fd's documentation asks) keeps timestamps
// when a unit's output goes to a file, or the service's stderr was
// redirected by a child shell; INVOCATION_ID alone would not tell.
func underJournald(w io.Writer, getenv func(string) string) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	dev, ino, ok := parseJournalStream(getenv("JOURNAL_STREAM"))
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// parseJournalStream parses JOURNAL_STREAM's "dev:ino" (decimal).
func parseJournalStream(s string) (dev, ino uint64, ok bool) {
	devS, inoS, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	dev, err1 := strconv.ParseUint(devS, 10, 64)
	ino, err2 := strconv.ParseUint(inoS, 10, 64)
	return dev, ino, err1 == nil && err2 == nil
}

// CronLogger adapts l to cron.Logger: cron's routine chatter (schedule,
// wake, run) goes to Debug, its errors (recovered panics) to Error.
func CronLogger(l *slog.Logger) cron.Logger {
	return cronLogger{l: l.With("component", "cron")}
}

type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug(msg, kv...) }

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append([]any{"error", err}, kv...)...)
}
