package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

func mustParse(t *testing.T, spec string) cron.Schedule {
	t.Helper()
	s, err := cron.ParseStandard(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStartOffset(t *testing.T) {
	tests := []struct {
		every time.Duration
		limit time.Duration
	}{
		{time.Minute, 30 * time.Second},
		{5 * time.Second, 5 * time.Second},
		{time.Second, time.Second},
		{time.Hour, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.every.String(), func(t *testing.T) {
			seconds := map[time.Duration]bool{}
			for i := range 500 {
				name := fmt.Sprintf("acct-%d", i)
				off := startOffset(name, tt.every)
				if off < 0 || off >= tt.limit {
					t.Fatalf("offset %v of %s outside [0, %v)", off, name, tt.limit)
				}
				if off != startOffset(name, tt.every) {
					t.Fatal("offset not deterministic")
				}
				seconds[off.Truncate(time.Second)] = true
			}
			// 500 accounts must spread over (nearly) every second available.
			if want := int(tt.limit / time.Second); len(seconds) < want*9/10 {
				t.Errorf("offsets fall in %d distinct seconds, want about %d", len(seconds), want)
			}
		})
	}
}

func TestShiftedAndFirstAt(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s := shifted{Schedule: mustParse(t, "*/5 * * * *"), offset: 17 * time.Second}
	if got, want := s.Next(t0), t0.Add(17*time.Second); !got.Equal(want) {
		t.Errorf("shifted.Next(10:00:00) = %v, want %v", got, want)
	}
	if got, want := s.Next(t0.Add(17*time.Second)), t0.Add(5*time.Minute+17*time.Second); !got.Equal(want) {
		t.Errorf("shifted.Next(10:00:17) = %v, want %v", got, want)
	}

	start := t0.Add(3 * time.Second)
	f := &firstAt{Schedule: s, start: start}
	if got := f.Next(t0); !got.Equal(start) {
		t.Errorf("first Next = %v, want the start %v", got, start)
	}
	if got, want := f.Next(start), t0.Add(17*time.Second); !got.Equal(want) {
		t.Errorf("second Next = %v, want the schedule's %v", got, want)
	}
	late := &firstAt{Schedule: s, start: t0}
	if got := late.Next(t0.Add(time.Second)); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("first Next after start = %v, want now", got)
	}
}

func TestBackoffTicks(t *testing.T) {
	tests := []struct {
		failures int
		every    time.Duration
		want     int
	}{
		{0, time.Minute, 0},
		{1, time.Minute, 1},
		{2, time.Minute, 2},
		{3, time.Minute, 4},
		{4, time.Minute, 8},
		{5, time.Minute, 10}, // capped at 10 minutes' worth
		{64, time.Minute, 10},
		{12, 5 * time.Second, 120},
		{1, time.Hour, 0}, // slower than the cap: never skip
	}
	for _, tt := range tests {
		if got := backoffTicks(tt.failures, tt.every); got != tt.want {
			t.Errorf("backoffTicks(%d, %v) = %d, want %d", tt.failures, tt.every, got, tt.want)
		}
	}
}

// TestChangedAccounts: a reload restarts exactly the accounts that are new
// or differ (config.Account.Equal, tested field by field in package
// config), a new API key or template included.
func TestChangedAccounts(t *testing.T) {
	load := func(key, body string) *config.Config {
		t.Helper()
		src := fmt.Sprintf(`accounts:
  - name: ghana
    url: https://aff-gh.retailcrm.ru
    api_key: %s
    webhooks:
      - url: https://example.com/hook
        format: template
        body: '%s'
  - name: accra
    url: https://aff-gh.retailcrm.ru
    api_key: same
    webhooks: [{url: https://example.com/hook}]
`, key, body)
		cfg, err := config.Parse("c.yaml", []byte(src), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := load("k1", "{{ order.id }}")
	tests := []struct {
		name string
		cfg  *config.Config
		want []string
	}{
		{"identical, loaded again", load("k1", "{{ order.id }}"), nil},
		{"new api key", load("k2", "{{ order.id }}"), []string{"ghana"}},
		{"template", load("k1", "{{ order.number }}"), []string{"ghana"}},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range changedAccounts(base, tt.cfg) {
			got = append(got, a.Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: changed %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestScheduleHandover: a changed account keeps its poll history but not
// its backoff, so a fixed API key is tried at the next tick.
func TestScheduleHandover(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &daemon{
		log: slog.New(slog.DiscardHandler), st: st, m: metrics.New(), cron: cron.New(),
		accounts: map[string]*account{}, runLocks: map[string]*sync.Mutex{},
	}
	mk := func() *account {
		return &account{cfg: config.Account{Name: "ghana"}, log: d.log, sched: shifted{Schedule: mustParse(t, "@every 1m")}, every: time.Minute}
	}
	now := time.Now()
	first := mk()
	d.schedule(context.Background(), []*account{first}, now)
	if first.observed == nil || !first.observed.since.Equal(now) || first.run == nil {
		t.Fatalf("new account state %+v", first)
	}
	last := now.Add(-time.Hour)
	first.observed.lastSuccess, first.observed.lastError = last, "403"
	first.observed.failures, first.observed.skip = 6, 10

	second := mk()
	d.schedule(context.Background(), []*account{second}, now.Add(time.Minute))
	o := second.observed
	if o.failures != 0 || o.skip != 0 {
		t.Errorf("backoff carried over: failures %d skip %d", o.failures, o.skip)
	}
	if !o.lastSuccess.Equal(last) || o.lastError != "403" || !o.since.Equal(now) {
		t.Errorf("poll history lost: %+v", o)
	}
	if second.run != first.run {
		t.Error("generations of one account must share the run lock")
	}
	if len(d.cron.Entries()) != 2 || d.accounts["ghana"] != second {
		t.Errorf("entries %d, current %p want %p", len(d.cron.Entries()), d.accounts["ghana"], second)
	}
}
