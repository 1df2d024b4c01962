package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

func TestUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{nil, exitUsage, "", "Usage: poller COMMAND"},
		{[]string{"help"}, exitOK, "poller dlq list|retry|drop", ""},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"version"}, exitOK, "poller ", ""},
		{[]string{"version", "extra"}, exitUsage, "", "unexpected arguments"},
		{[]string{"run"}, exitUsage, "", "-config is required"},
		{[]string{"run", "-config"}, exitUsage, "", "flag needs an argument"},
		{[]string{"run", "-nope"}, exitUsage, "", "flag provided but not defined: -nope"},
		{[]string{"run", "-h"}, exitOK, "", "Usage: poller run -config FILE"},
		{[]string{"run", "-config", "c.yaml", "stray"}, exitUsage, "", "unexpected arguments: stray"},
		{[]string{"check"}, exitUsage, "", "-config is required"},
		{[]string{"check", "-config", "/nonexistent/c.yaml"}, exitConfig, "", "/nonexistent/c.yaml: cannot read config"},
		{[]string{"run", "-config", "/nonexistent/c.yaml"}, exitConfig, "", "/nonexistent/c.yaml: cannot read config"},
		{[]string{"status"}, exitUsage, "", "-config is required"},
		{[]string{"replay", "-config", "c.yaml"}, exitUsage, "", "-account is required"},
		{[]string{"replay", "-config", "c.yaml", "-account", "a", "-to", "2026-11-30T08:00:00Z"}, exitUsage, "", "-from is required"},
		{[]string{"replay", "-config", "c.yaml", "-account", "a", "-from", "2999-01-01T00:00:00Z"}, exitUsage, "", "is not before -to"},
		{[]string{"replay", "-config", "c.yaml", "-account", "a", "-from", "2026-11-30T08:00:00Z", "-to", "2026-11-30T07:00:00Z"}, exitUsage, "", "is not before -to"},
		{[]string{"replay", "-config", "c.yaml", "-account", "a", "-from", "yesterday", "-to", "2026-11-30T07:00:00Z"}, exitUsage, "", `-from "yesterday" is not an RFC 3339 time`},
		{[]string{"replay", "-config", "c.yaml", "-account", "a", "-from", "2026-11-30T08:00:00Z", "-to", "2999-01-01T00:00:00Z"}, exitUsage, "", "is in the future"},
		{[]string{"when", "-config", "c.yaml"}, exitUsage, "", "-account is required"},
		{[]string{"when", "-config", "c.yaml", "-account", "a", "-since", "-1h"}, exitUsage, "", "-since must be positive"},
		{[]string{"when", "-config", "c.yaml", "-account", "a", "x", "y"}, exitUsage, "", "one expression at most"},
		{[]string{"dlq"}, exitUsage, "", "Usage: poller dlq list|retry|drop"},
		{[]string{"dlq", "-h"}, exitOK, "Usage: poller dlq", ""},
		{[]string{"dlq", "purge", "-config", "c.yaml"}, exitUsage, "", `unknown dlq command "purge"`},
		{[]string{"dlq", "purge"}, exitUsage, "", `unknown dlq command "purge"`},
		{[]string{"dlq", "list"}, exitUsage, "", "-config is required"},
		{[]string{"dlq", "list", "-config", "c.yaml", "x-1"}, exitUsage, "", "unexpected arguments: x-1"},
		{[]string{"send-test", "-config", "c.yaml"}, exitUsage, "", "-account is required"},
		{[]string{"state"}, exitUsage, "", "Usage: poller state verify"},
		{[]string{"state", "fsck"}, exitUsage, "", `unknown state command "fsck"`},
		{[]string{"state", "verify"}, exitUsage, "", "give -config FILE or the state file to verify"},
		{[]string{"state", "verify", "-config", "c.yaml", "x.db"}, exitUsage, "", "not both"},
		{[]string{"state", "verify", "-config", "/nonexistent/c.yaml"}, exitConfig, "", "/nonexistent/c.yaml: cannot read config"},
		{[]string{"state", "backup", "-config", "c.yaml"}, exitUsage, "", "give one destination file"},
		{[]string{"state", "backup", "dst.db"}, exitUsage, "", "-config is required"},
		{[]string{"demo", "-duration", "-1s"}, exitUsage, "", "-duration must be positive"},
		{[]string{"demo", "-duration", "soon"}, exitUsage, "", "invalid value"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.stdout)
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.stderr)
			}
		})
	}
}

func TestTestEvent(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		acct                 config.Account
		id, status, site, at string
	}{
		{config.Account{Name: "ghana"}, "ghana-test-1795426200", "approved", "test-site", "2026-11-23 09:30:00"},
		{config.Account{Name: "kenya", Statuses: []string{"paid", "x"}, Sites: []string{"ke"}, TimeZone: time.FixedZone("EAT", 3*3600)},
			"kenya-test-1795426200", "paid", "ke", "2026-11-23 12:30:00"},
	}
	for _, tt := range tests {
		ev := testEvent(tt.acct, now)
		if ev.ID != tt.id || ev.Account != tt.acct.Name || ev.Type != event.Test ||
			ev.Change.NewValue != tt.status || ev.Change.CreatedAt != tt.at {
			t.Errorf("testEvent(%s) = %+v", tt.acct.Name, ev)
		}
		var order map[string]any
		if err := json.Unmarshal(ev.Order, &order); err != nil {
			t.Fatalf("order JSON: %v", err)
		}
		if order["site"] != tt.site || order["status"] != tt.status || order["number"] != "TEST-1795426200" {
			t.Errorf("order = %v", order)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"https://u:p@app.example.com/hook?token=s3cret#x": "https://app.example.com/hook",
		"http://127.0.0.1:8080/a/b":                       "http://127.0.0.1:8080/a/b",
		"https://u:${PASS}@${HOST}/hooks/${TOKEN}?t=${T}": "https://${HOST}/hooks/${TOKEN}",
		"https://h.example.com":                           "https://h.example.com",
		"not a url":                                       "not a url",
	}
	for in, want := range tests {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The reference documents every command.
func TestReferenceDocumentsEveryCommand(t *testing.T) {
	data, err := os.ReadFile("../../docs/REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		if !strings.Contains(string(data), "`poller "+c.name) {
			t.Errorf("docs/REFERENCE.md does not document `poller %s`", c.name)
		}
	}
}

func TestReplayWindow(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		from, to         string
		wantFrom, wantTo time.Time
		err              string
	}{
		{"2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z", time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), ""},
		{"2026-11-30T08:00:00+03:00", "", time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC), now, ""}, // -to left out: the window ends now
		{"", "2026-11-30T09:00:00Z", time.Time{}, time.Time{}, "-from is required"},
		{"2026-12-01T13:00:00Z", "", time.Time{}, time.Time{}, "-from 2026-12-01T13:00:00Z is not before -to 2026-12-01T12:00:00Z"},
		{"2026-11-30T08:00:00Z", "2026-12-02T00:00:00Z", time.Time{}, time.Time{}, "is in the future"},
		{"2026-11-30T08:00:00Z", "tomorrow", time.Time{}, time.Time{}, `-to "tomorrow" is not an RFC 3339 time`},
	}
	for _, tt := range tests {
		from, to, err := replayWindow(tt.from, tt.to, now)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("replayWindow(%q, %q) = %v, want an error containing %q", tt.from, tt.to, err, tt.err)
			}
			continue
		}
		if err != nil || !from.Equal(tt.wantFrom) || !to.Equal(tt.wantTo) {
			t.Errorf("replayWindow(%q, %q) = %v, %v, %v; want %v, %v", tt.from, tt.to, from, to, err, tt.wantFrom, tt.wantTo)
		}
	}
}
