package daemon

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// TestRemovedAccounts: the pending events of an account that left the
// config stay for its webhooks' max_age from the last config that had it,
// through restarts; a return (a typo fixed) keeps them; after the
// deadline they are dead-lettered with reason "account removed". An
// account found without a mark (removed while the daemon was stopped)
// gets at least the default 72h.
func TestRemovedAccounts(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, name := range []string{"beta", "gamma"} {
		var evs []store.NewEvent
		for id := int64(1); id <= 3; id++ {
			evs = append(evs, store.NewEvent{Event: event.Event{ID: event.ID(name, id), Type: event.StatusChanged, Account: name,
				Change: event.Change{HistoryID: id}}, OrderID: id, DetectedAt: t0})
		}
		if err := st.CommitPoll(name, store.Commit{Events: evs, Webhooks: []string{"app", "crm"}, Cursor: 3, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	acct := func(name string, maxAge ...time.Duration) config.Account {
		a := config.Account{Name: name}
		for i, m := range maxAge {
			a.Webhooks = append(a.Webhooks, config.Webhook{Name: []string{"app", "crm"}[i], Retry: config.Retry{MaxAge: m}})
		}
		return a
	}
	with := &config.Config{Accounts: []config.Account{acct("alpha", time.Hour), acct("beta", time.Hour, 2*time.Hour), acct("gamma", time.Hour)}}
	without := &config.Config{Accounts: []config.Account{acct("alpha", time.Hour), acct("gamma", time.Hour)}}
	logs := &testkit.SyncBuffer{}
	d := &daemon{st: st, log: slog.New(slog.NewTextHandler(logs, nil))}

	removal := func(name string) store.Removal {
		t.Helper()
		s, err := st.State(name)
		if err != nil {
			t.Fatal(err)
		}
		return s.Removed
	}
	counts := func(name string) (int, int) {
		t.Helper()
		p, dd, err := st.Counts(name)
		if err != nil {
			t.Fatal(err)
		}
		return p, dd
	}

	// A reload drops beta: marked with the old config's longest max_age.
	d.removedAccounts(without, with, t0)
	if r := removal("beta"); !r.At.Equal(t0) || !r.Deadline.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("removal %+v, want at t0, deadline t0+2h", r)
	}
	if !strings.Contains(logs.String(), "account not in the config") {
		t.Errorf("no warning about the removal:\n%s", logs.String())
	}
	// Ticks and a restart (old unknown) before the deadline change nothing.
	d.removedAccounts(without, nil, t0.Add(time.Hour))
	if r := removal("beta"); !r.Deadline.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("deadline moved to %v", r.Deadline)
	}
	if p, dead := counts("beta"); p != 6 || dead != 0 {
		t.Errorf("before the deadline: %d pending, %d dead", p, dead)
	}
	// The typo is fixed: the mark goes, nothing was dropped.
	d.removedAccounts(with, without, t0.Add(90*time.Minute))
	if r := removal("beta"); !r.IsZero() {
		t.Errorf("still marked after the return: %+v", r)
	}
	// Removed again: a new window from now.
	d.removedAccounts(without, with, t0.Add(100*time.Minute))
	d.removedAccounts(without, without, t0.Add(100*time.Minute+2*time.Hour-time.Second))
	if p, _ := counts("beta"); p != 6 {
		t.Errorf("dead-lettered before the new window ended: %d pending", p)
	}
	d.removedAccounts(without, without, t0.Add(100*time.Minute+2*time.Hour))
	if p, dead := counts("beta"); p != 0 || dead != 6 {
		t.Errorf("after the deadline: %d pending, %d dead; want 0 and 6", p, dead)
	}
	items, err := st.Dead("beta")
	if err != nil || len(items) != 6 || items[0].DeadReason != store.ReasonAccountRemoved {
		t.Errorf("dead letters %d (%v): %+v", len(items), err, items)
	}
	if !strings.Contains(logs.String(), "its pending events were dead-lettered") {
		t.Errorf("no warning about the dead letters:\n%s", logs.String())
	}

	// gamma left while no daemon ran: at least 72h from when it is found.
	found := t0.Add(5 * time.Hour)
	d.removedAccounts(&config.Config{Accounts: []config.Account{acct("alpha", time.Hour)}}, nil, found)
	if r := removal("gamma"); !r.Deadline.Equal(found.Add(defaultMaxAge)) {
		t.Errorf("gamma: %+v, want the deadline %v", r, found.Add(defaultMaxAge))
	}
	if p, _ := counts("gamma"); p != 6 {
		t.Errorf("gamma: %d pending", p)
	}
}
