package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

func loadZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// An account in Europe/Moscow: an approval delivered, the order still
// approved 25 h later, after the seen set was pruned. The sweep must not
// send it again, whether the zone comes from the account (time_zone unset)
// or a wrong override makes the sweep's window too wide.
func TestSweepDoesNotResendInAnotherZone(t *testing.T) {
	for _, c := range []struct {
		name     string
		override *time.Location
	}{{"zone from the account", nil}, {"wrong override", time.UTC}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{seed: 301,
				sim:     crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow")},
				account: func(a *config.Account) { a.TimeZone = c.override }})
			o, other := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
			h.poll()
			approved := h.crm.SetStatus(o, "approved")
			h.poll()
			if !hasOnce(h.outbox(), approved) {
				t.Fatalf("approval %d not emitted", approved)
			}
			h.clock.Advance(5 * time.Minute)
			h.poll() // retires the look-back mark
			h.clock.Advance(25 * time.Hour)
			h.crm.SetStatus(other, "complete")
			h.poll()
			h.clock.Advance(5 * time.Minute)
			h.poll() // retires the mark, so the commit prunes the seen set below the cursor
			if seen, _ := h.st.Seen("acme", approved-1, approved); seen[approved] {
				t.Fatal("the approval is still in the seen set: the test needs it pruned")
			}
			if res := h.sweep(); res.Recovered != 0 {
				t.Errorf("sweep %+v re-sent a delivered approval", res)
			}
			if n := countID(h.outbox(), approved); n != 1 {
				t.Errorf("approval %d queued %d times, want once", approved, n)
			}
		})
	}
}

// start_from: a time, for an account in Europe/Moscow: approvals before it
// are never emitted, approvals after it are.
func TestStartFromTimeInAccountZone(t *testing.T) {
	start := newClock().Now().Add(2 * time.Hour)
	h := newHarness(t, harnessOptions{seed: 302,
		sim: crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow")},
		account: func(a *config.Account) {
			a.TimeZone, a.StartFrom, a.StartTime = nil, start.Format(time.RFC3339), start
		}})
	o1, o2 := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
	h.clock.Advance(time.Hour)
	before := h.crm.SetStatus(o1, "approved") // an hour before start_from
	h.clock.Advance(2 * time.Hour)
	after := h.crm.SetStatus(o2, "approved") // an hour after
	h.poll()
	items := h.outbox()
	if countID(items, before) != 0 {
		t.Errorf("approval %d made before start_from emitted", before)
	}
	if !hasOnce(items, after) {
		t.Errorf("approval %d made after start_from not emitted: %v", after, ids(items))
	}
	if res := h.sweep(); res.Recovered != 0 {
		t.Errorf("sweep %+v emitted something", res)
	}
}

// The zone is read at the first poll, trusted for a day, read again after
// RefreshZone; with time_zone set it is never asked for.
func TestZoneRefresh(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 303,
		sim:     crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow")},
		account: func(a *config.Account) { a.TimeZone = nil }})
	reads := func() int { return h.crm.Requests(crmsim.EndpointSettings) }
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"first poll", func() {}, 1},
		{"an hour later", func() { h.clock.Advance(time.Hour) }, 1},
		{"a day later", func() { h.clock.Advance(24 * time.Hour) }, 2},
		{"after RefreshZone", h.p.RefreshZone, 3},
		{"the poll after", func() {}, 3},
	}
	for _, s := range steps {
		s.do()
		h.poll()
		if got := reads(); got != s.want {
			t.Errorf("%s: %d settings reads, want %d", s.name, got, s.want)
		}
	}
	if loc, known := h.p.location(); !known || loc.String() != "Europe/Moscow" {
		t.Errorf("zone %v (known %v), want Europe/Moscow", loc, known)
	}

	o := newHarness(t, harnessOptions{seed: 304, sim: crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow")},
		account: func(a *config.Account) { a.TimeZone = loadZone(t, "Asia/Tokyo") }})
	o.poll()
	o.p.RefreshZone()
	o.poll()
	if _, err := o.p.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := o.crm.Requests(crmsim.EndpointSettings); n != 0 {
		t.Errorf("%d settings reads with time_zone set, want none", n)
	}
}

// A key that cannot read the settings, without time_zone: the zone is
// unknown. A first start from a time waits (and says why), replay refuses,
// the key is asked again only after a wait, and a zone read once is kept
// when a later read fails.
func TestZoneUnknown(t *testing.T) {
	start := newClock().Now().Add(-time.Hour)
	h := newHarness(t, harnessOptions{seed: 305,
		sim: crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow"), SettingsForbidden: true},
		account: func(a *config.Account) {
			a.TimeZone, a.StartFrom, a.StartTime = nil, start.Format(time.RFC3339), start
		}})
	h.crm.SetStatus(h.crm.CreateOrder("main", "new"), "approved")
	err := h.p.Poll(context.Background())
	if !errors.Is(err, ErrZoneUnknown) || !strings.Contains(err.Error(), "wrong API key") || !strings.Contains(err.Error(), "set time_zone") {
		t.Fatalf("Poll = %v, want ErrZoneUnknown with its cause and the fix", err)
	}
	if st := h.state(); st.Initialized || len(h.outbox()) != 0 {
		t.Fatalf("state %+v: started without knowing the zone", st)
	}
	h.clock.Advance(30 * time.Second)
	_ = h.p.Poll(context.Background())
	if n := h.crm.Requests(crmsim.EndpointSettings); n != 1 {
		t.Errorf("%d settings reads within the retry wait, want 1", n)
	}
	_, err = h.p.Replay(context.Background(), start, h.clock.Now(), func([]store.NewEvent) error { return nil })
	if !errors.Is(err, ErrZoneUnknown) {
		t.Errorf("Replay = %v, want ErrZoneUnknown", err)
	}
	if res, err := h.p.Sweep(context.Background()); err != nil || res.Orders != 0 {
		t.Errorf("sweep of an account not started: %+v, %v", res, err)
	}

	// A zone read once stays when the settings become unreadable.
	k := newHarness(t, harnessOptions{seed: 306, sim: crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow")},
		account: func(a *config.Account) { a.TimeZone = nil }})
	k.poll()
	k.p.client = h.p.client // a client whose settings reads fail
	k.clock.Advance(25 * time.Hour)
	k.poll()
	if loc, known := k.p.location(); !known || loc.String() != "Europe/Moscow" {
		t.Errorf("zone %v (known %v) after a failed refresh, want Europe/Moscow kept", loc, known)
	}
}

// With the zone unknown, the sweep's window still starts no later than
// meant: an account at UTC-10 whose transition the poll missed 20 h ago
// (a window written in UTC would start 14 h ago there).
func TestSweepWindowWithZoneUnknown(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 307,
		sim: crmsim.AccountOptions{TimeZone: loadZone(t, "Pacific/Honolulu"), SettingsForbidden: true},
		account: func(a *config.Account) {
			a.TimeZone, a.LookBackTime = nil, 5*time.Second
		}})
	o1, o2 := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
	h.poll()
	late := lateEntry(h, 20*time.Second, func() int64 { return h.crm.SetStatus(o1, "approved") })
	h.crm.SetStatus(o2, "cancel")
	for range 4 {
		h.poll()
		h.clock.Advance(2 * time.Second)
	}
	h.clock.Advance(20 * time.Hour)
	h.poll()
	if countID(h.outbox(), late) != 0 {
		t.Fatal("the history poll found the entry: the test needs it missed")
	}
	if res := h.sweep(); res.Recovered != 1 || !hasOnce(h.outbox(), late) {
		t.Errorf("sweep %+v did not recover %d", res, late)
	}
	if res := h.sweep(); res.Recovered != 0 {
		t.Errorf("second sweep %+v", res)
	}
}
