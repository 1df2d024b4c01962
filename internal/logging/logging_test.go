package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

// journalEnv returns a getenv that reports JOURNAL_STREAM as the dev:ino of f.
func journalEnv(t *testing.T, f *os.File) func(string) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	v := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	return func(k string) string {
		if k == "JOURNAL_STREAM" {
			return v
		}
		return ""
	}
}

func tempFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestUnderJournald(t *testing.T) {
	journal := tempFile(t, "journal")
	other := tempFile(t, "other")
	env := journalEnv(t, journal)
	none := func(string) string { return "" }
	bad := func(k string) string {
		if k == "JOURNAL_STREAM" {
			return "garbage"
		}
		return ""
	}
	tests := []struct {
		name   string
		w      io.Writer
		getenv func(string) string
		want   bool
	}{
		{"matching stream", journal, env, true},
		{"other file", other, env, false},
		{"not a file", &bytes.Buffer{}, env, false},
		{"no env", journal, none, false},
		{"malformed env", journal, bad, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := underJournald(tt.w, tt.getenv); got != tt.want {
				t.Errorf("underJournald = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewDropsTimeUnderJournald(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			journal := tempFile(t, "journal")
			newLogger(config.Log{Format: format}, journal, journalEnv(t, journal)).Info("hello")
			other := tempFile(t, "other")
			newLogger(config.Log{Format: format}, other, journalEnv(t, journal)).Info("hello")
			for _, tc := range []struct {
				f        *os.File
				wantTime bool
			}{{journal, false}, {other, true}} {
				b, err := os.ReadFile(tc.f.Name())
				if err != nil {
					t.Fatal(err)
				}
				line := string(b)
				if !strings.Contains(line, "hello") {
					t.Fatalf("no message in %q", line)
				}
				hasTime := strings.Contains(line, "time=") || strings.Contains(line, `"time":`)
				if hasTime != tc.wantTime {
					t.Errorf("%s: time present = %v, want %v: %q", tc.f.Name(), hasTime, tc.wantTime, line)
				}
			}
		})
	}
}

func TestNewFormatAndLevel(t *testing.T) {
	tests := []struct {
		name    string
		c       config.Log
		wantLog bool
		check   func(t *testing.T, out string)
	}{
		{"json info", config.Log{Level: slog.LevelInfo, Format: "json"}, true, func(t *testing.T, out string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("not JSON: %v: %q", err, out)
			}
			if m["msg"] != "polled" || m["account"] != "ghana" || m["level"] != "INFO" {
				t.Errorf("unexpected record %v", m)
			}
		}},
		{"text info", config.Log{Level: slog.LevelInfo, Format: "text"}, true, func(t *testing.T, out string) {
			if !strings.Contains(out, "level=INFO msg=polled account=ghana") {
				t.Errorf("unexpected text %q", out)
			}
		}},
		{"below level", config.Log{Level: slog.LevelWarn, Format: "text"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			New(tt.c, &buf).Info("polled", "account", "ghana")
			if got := buf.Len() > 0; got != tt.wantLog {
				t.Fatalf("logged = %v, want %v (%q)", got, tt.wantLog, buf.String())
			}
			if tt.check != nil {
				tt.check(t, buf.String())
			}
		})
	}
}

func TestSecretsRedacted(t *testing.T) {
	const key = "s3cr3t-api-key"
	acct := config.Account{Name: "ghana", APIKey: config.Secret(key)}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			l := New(config.Log{Level: slog.LevelDebug, Format: format}, &buf)
			l.Info("key", "api_key", acct.APIKey)
			l.Info("account", "account", acct)
			l.With("api_key", acct.APIKey).Debug("with")
			l.Info("webhook", "secrets", []config.Secret{"whsec_abc"})
			out := buf.String()
			if strings.Contains(out, key) || strings.Contains(out, "whsec_abc") {
				t.Errorf("secret leaked: %s", out)
			}
			if strings.Count(out, "REDACTED") < 4 {
				t.Errorf("want REDACTED in every record: %s", out)
			}
		})
	}
}

func TestCronLogger(t *testing.T) {
	var buf bytes.Buffer
	var cl cron.Logger = CronLogger(New(config.Log{Level: slog.LevelDebug, Format: "json"}, &buf))
	cl.Info("wake", "now", "x")
	cl.Error(errors.New("boom"), "panic", "entry", 3)
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 2 {
		t.Fatalf("want 2 records, got %d", len(recs))
	}
	if recs[0]["level"] != "DEBUG" || recs[0]["msg"] != "wake" || recs[0]["component"] != "cron" {
		t.Errorf("info record %v", recs[0])
	}
	if recs[1]["level"] != "ERROR" || recs[1]["error"] != "boom" || recs[1]["entry"] != float64(3) {
		t.Errorf("error record %v", recs[1])
	}

	buf.Reset()
	CronLogger(New(config.Log{Level: slog.LevelInfo}, &buf)).Info("wake")
	if buf.Len() != 0 {
		t.Errorf("cron chatter logged at info: %q", buf.String())
	}
}

// FuzzParseJournalStream: whatever systemd (or anything else) puts in
// JOURNAL_STREAM, parsing does not panic, and what it accepts is exactly
// "dev:ino" in decimal.
func FuzzParseJournalStream(f *testing.F) {
	for _, s := range []string{"8:12345", "", ":", "8:", ":1", "a:b", "1:2:3", "-1:2", "18446744073709551616:1", "+8:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dev, ino, ok := parseJournalStream(s)
		if !ok {
			return
		}
		d2, i2, ok2 := parseJournalStream(fmt.Sprintf("%d:%d", dev, ino))
		if !ok2 || d2 != dev || i2 != ino {
			t.Errorf("%q parsed to %d:%d, which does not round-trip", s, dev, ino)
		}
	})
}
