package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
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

func TestShifted(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s := shifted{Schedule: mustParse(t, "*/5 * * * *"), offset: 17 * time.Second}
	if got, want := s.Next(t0), t0.Add(17*time.Second); !got.Equal(want) {
		t.Errorf("shifted.Next(10:00:00) = %v, want %v", got, want)
	}
	if got, want := s.Next(t0.Add(17*time.Second)), t0.Add(5*time.Minute+17*time.Second); !got.Equal(want) {
		t.Errorf("shifted.Next(10:00:17) = %v, want %v", got, want)
	}
}

// add adds a member on schedule, shifted by offset, whose ticks call tick.
func add(t *testing.T, s *slots, schedule string, offset time.Duration, tick func()) *member {
	t.Helper()
	return s.add(context.Background(), schedule, shifted{Schedule: mustParse(t, schedule), offset: offset},
		slog.New(slog.DiscardHandler), func(context.Context) { tick() })
}

// Thousands of accounts on one schedule share a few hundred cron entries;
// an emptied slot leaves cron; each account's first tick comes after its
// own offset; stop waits for running polls and starts no more.
func TestSlots(t *testing.T) {
	s := newSlots(cron.New(), slog.New(slog.DiscardHandler))
	members := make([]*member, 5000)
	for i := range members {
		name := fmt.Sprintf("acct-%d", i)
		members[i] = add(t, s, "@every 1m", startOffset(name, time.Minute), func() {})
	}
	if n := s.entries(); n > int(maxOffset/slotQuantum) || n < 100 {
		t.Errorf("%d accounts use %d cron entries, want at most %d", len(members), n, maxOffset/slotQuantum)
	}
	for _, m := range members {
		s.remove(m)
	}
	if n := s.entries(); n != 0 || len(s.cron.Entries()) != 0 {
		t.Errorf("%d slots and %d cron entries left after removing every account", n, len(s.cron.Entries()))
	}
	s.stop(context.Background(), func() {}, time.Second)

	var mu sync.Mutex
	var ticked []string
	release := make(chan struct{})
	tick := func(name string) func() {
		return func() {
			mu.Lock()
			ticked = append(ticked, name)
			mu.Unlock()
			<-release
		}
	}
	s = newSlots(cron.New(), slog.New(slog.DiscardHandler))
	add(t, s, "@every 1h", 10*time.Millisecond, tick("soon"))
	add(t, s, "@every 1h", time.Hour, tick("late"))
	waitFor(t, "the first tick of the account due soon", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ticked) == 1 && ticked[0] == "soon"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cancelled := false
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	if !s.stop(ctx, func() { cancelled = true }, 5*time.Second) {
		t.Error("stop did not wait for the running poll")
	}
	if !cancelled {
		t.Error("the polls' context was not cancelled at the bound")
	}
	if m := add(t, s, "@every 1h", 0, tick("after")); m != nil {
		t.Error("a member was added after stop")
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(ticked) != 1 {
		t.Errorf("ticks %v: a poll started after stop", ticked)
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
		log: slog.New(slog.DiscardHandler), st: st, m: metrics.New(), slots: newSlots(cron.New(), slog.New(slog.DiscardHandler)),
		accounts: map[string]*account{}, runLocks: map[string]*sync.Mutex{},
	}
	mk := func() *account {
		return &account{cfg: config.Account{Name: "ghana", Schedule: "@every 1m"}, log: d.log,
			sched: shifted{Schedule: mustParse(t, "@every 1m"), offset: time.Hour}, every: time.Minute}
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
	if d.accounts["ghana"] != second {
		t.Errorf("current %p want %p", d.accounts["ghana"], second)
	}
}

// A poll that panics is logged and the daemon goes on.
func TestSlotsRecoverPanics(t *testing.T) {
	var logs testkit.SyncBuffer
	s := newSlots(cron.New(), slog.New(slog.DiscardHandler))
	s.add(context.Background(), "@every 1h", shifted{Schedule: mustParse(t, "@every 1h")},
		slog.New(slog.NewTextHandler(&logs, nil)), func(context.Context) { panic("boom") })
	waitFor(t, "the panic in the log", func() bool { return strings.Contains(logs.String(), "poll panicked") })
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("log without the panic value:\n%s", logs.String())
	}
	s.stop(context.Background(), func() {}, time.Second)
}

// Slots made at one moment first run spread like their members' offsets,
// an interval after the members' own first ticks: @every counts from the
// entry's runs, so this first run sets the phase of every later one.
func TestSlotsSpreadFirstRuns(t *testing.T) {
	s := newSlots(cron.New(), slog.New(slog.DiscardHandler))
	now := time.Now()
	for i := range 300 {
		add(t, s, "@every 1m", time.Duration(i)*100*time.Millisecond, func() {})
	}
	s.cron.Start()
	defer s.stop(context.Background(), func() {}, time.Second)
	var lo, hi time.Time
	for _, e := range s.cron.Entries() {
		if lo.IsZero() || e.Next.Before(lo) {
			lo = e.Next
		}
		if e.Next.After(hi) {
			hi = e.Next
		}
	}
	if len(s.cron.Entries()) != 300 || hi.Sub(lo) < 25*time.Second || lo.Before(now.Add(59*time.Second)) {
		t.Errorf("%d slots first run between %v and %v after now, want spread over the 30 s of offsets, a minute on",
			len(s.cron.Entries()), lo.Sub(now), hi.Sub(now))
	}
}

// A slot's cron run starts all of its accounts' polls before it returns,
// whatever their offsets within the slot (a timer each would wake the
// process once per poll): stop, which starts no more polls and waits for
// those started, sees every one of them run.
func TestSlotStartsItsPollsTogether(t *testing.T) {
	s := newSlots(cron.New(), slog.New(slog.DiscardHandler))
	const n = 5
	var ticks atomic.Int32
	var m *member
	for i := range n { // first ticks an hour away; offsets 0-80 ms into one slot
		m = add(t, s, "@every 1h", time.Hour+time.Duration(i)*20*time.Millisecond, func() { ticks.Add(1) })
	}
	if got := s.entries(); got != 1 {
		t.Fatalf("%d slots, want the %d accounts in one", got, n)
	}
	s.fire(context.Background(), m.key)
	if !s.stop(context.Background(), func() {}, time.Second) {
		t.Fatal("the polls did not end")
	}
	if got := ticks.Load(); got != n {
		t.Errorf("%d of the slot's %d polls ran", got, n)
	}
}

// A burst of polls starts as many workers as it needs; afterwards at most
// maxIdleWorkers wait for work.
func TestSlotsWorkersAfterABurst(t *testing.T) {
	s := newSlots(cron.New(), slog.New(slog.DiscardHandler))
	release := make(chan struct{})
	var running atomic.Int64
	before := runtime.NumGoroutine()
	for range 200 {
		s.start(context.Background(), &member{log: slog.New(slog.DiscardHandler), tick: func(context.Context) {
			running.Add(1)
			<-release
		}})
	}
	// Each poll blocks until release: all 200 run at once only if the
	// burst got a worker each.
	waitFor(t, "200 polls in flight at once", func() bool { return running.Load() == 200 })
	close(release)
	s.ticks.Wait()
	waitFor(t, "the extra workers to end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.idle == maxIdleWorkers && runtime.NumGoroutine()-before <= maxIdleWorkers+2
	})
	s.stop(context.Background(), func() {}, time.Second)
	waitFor(t, "the idle workers to end at stop", func() bool { return runtime.NumGoroutine()-before <= 2 })
}
