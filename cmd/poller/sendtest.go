package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/deliver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

func cmdSendTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("send-test", "-config FILE -account A", stderr)
	configFlag(fs)
	name := fs.String("account", "", "the `account` whose webhooks get the test event")
	cfg, code, ok := parseAndLoad(fs, args, stderr, flagRules{required: []string{"account"}})
	if !ok {
		return code
	}
	acct, ok := configuredAccount(fs, stderr, cfg, *name)
	if !ok {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	now := time.Now()
	ev := testEvent(*acct, now)
	fmt.Fprintf(stdout, "sending %s to %d webhooks of %s\n", ev.ID, len(acct.Webhooks), acct.Name)
	failed := 0
	for _, wh := range acct.Webhooks {
		res, err := deliver.Send(ctx, nil, wh, ev, version.UserAgent(), now)
		target := wh.Method + " " + redactURL(wh.URLAsWritten)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL  webhook %s (%s): %v\n", wh.Name, target, err)
			continue
		}
		fmt.Fprintf(stdout, "ok    webhook %s (%s): %d in %s\n", wh.Name, target, res.Status, res.Duration.Round(time.Millisecond))
	}
	if failed > 0 {
		return exitFailure
	}
	return exitOK
}

// testEvent is a synthetic status change of a fake order, shaped like a
// real event so that receivers and templates can be tried out, with type
// poller.test so that a receiver can tell it from a real approval. Its id
// is "<account>-test-<unix>".
func testEvent(a config.Account, now time.Time) event.Event {
	status := "approved"
	if len(a.Statuses) > 0 {
		status = a.Statuses[0]
	}
	site := "test-site"
	if len(a.Sites) > 0 {
		site = a.Sites[0]
	}
	tz := a.TimeZone
	if tz == nil {
		tz = time.UTC
	}
	created := now.In(tz).Format("2006-01-02 15:04:05")
	order, _ := json.Marshal(map[string]any{ // a map of plain values cannot fail to marshal
		"id":           0,
		"number":       "TEST-" + strconv.FormatInt(now.Unix(), 10),
		"externalId":   "send-test",
		"site":         site,
		"status":       status,
		"createdAt":    created,
		"firstName":    "Test",
		"lastName":     "Customer",
		"email":        "test@example.com",
		"phone":        "+10000000000",
		"customer":     map[string]any{"id": 0, "firstName": "Test", "lastName": "Customer"},
		"items":        []any{},
		"totalSumm":    0,
		"customFields": map[string]any{},
		"payments":     map[string]any{},
	})
	return event.Event{
		ID:      a.Name + "-test-" + strconv.FormatInt(now.Unix(), 10),
		Type:    event.Test,
		Account: a.Name,
		Change: event.Change{
			Field: "status", OldValue: "new", NewValue: status,
			Source: "user", CreatedAt: created,
		},
		Order: order,
	}
}

// redactURL drops the query, fragment and user info of a URL as written,
// which may carry credentials typed into the file; the rest stays as
// written (${VAR} included), so it is cut as text, not parsed.
func redactURL(s string) string {
	s, _, _ = strings.Cut(s, "#")
	s, _, _ = strings.Cut(s, "?")
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	authority, path, slash := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if slash {
		path = "/" + path
	}
	return scheme + "://" + authority + path
}
