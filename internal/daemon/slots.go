package daemon

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/clock"
)

// slotQuantum is how close two accounts' ticks must be to share a cron
// entry.
const slotQuantum = 100 * time.Millisecond

// slots shares cron entries between accounts: those with the same schedule
// whose offsets fall in the same slotQuantum share one entry, which starts
// a poll for each of them at once. cron sorts all its entries on every run, so one
// entry per account would cost O(accounts) at each of thousands of runs a
// minute; this way it holds a few hundred entries whatever the number of
// accounts. Starting a slot's polls together, rather than each at its own
// offset within the quantum, wakes the process once per slot instead of
// once per poll: at 10,000 accounts that halves the daemon's CPU (see
// docs/PERFORMANCE.md, section 3). An account's first tick comes from a
// timer of its own, its offset after it is added, so a start or a reload
// polls it at once.
//
// Polls run on workers: goroutines that take the next poll when they are
// done with one, so their grown stacks are reused. A burst (the first polls
// of thousands of accounts queue behind the state file's writes) starts as
// many as needed; when it is over, at most maxIdleWorkers stay waiting, and
// those end too after workerIdle without work. Every poll has a recover and
// is tracked, so that stop can wait for it.
type slots struct {
	cron  *cron.Cron
	log   *slog.Logger
	clock clock.Clock
	work  chan func()   // to an idle worker
	quit  chan struct{} // closed by stop: the clock watch ends

	mu       sync.Mutex
	stopping bool
	watching bool // the clock watch runs (from the first add)
	idle     int  // workers waiting on work
	bySlot   map[slotKey]*slot
	ticks    sync.WaitGroup
}

// Worker bounds: how many may wait for work, and for how long.
const (
	maxIdleWorkers = 32
	workerIdle     = time.Minute
)

type slotKey struct {
	schedule string
	offset   time.Duration // a multiple of slotQuantum
}

// slot is one cron entry and the accounts it polls.
type slot struct {
	entry   cron.EntryID
	sched   shifted         // the schedule, shifted by the slot's offset
	polls   context.Context // the context its polls run under
	members map[*member]struct{}
}

// member is one scheduled account in the slots.
type member struct {
	key   slotKey
	first *time.Timer // its first tick
	tick  func(context.Context)
	log   *slog.Logger
}

// newSlots returns slots over c, which runs in UTC.
func newSlots(c *cron.Cron, log *slog.Logger, opts ...slotsOption) *slots {
	s := &slots{cron: c, log: log, clock: clock.System{}, work: make(chan func()), quit: make(chan struct{}), bySlot: map[slotKey]*slot{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// slotsOption changes a default of newSlots.
type slotsOption func(*slots)

// withClock makes the slots read clk (default clock.System): tests pass
// one whose wall time they step.
func withClock(clk clock.Clock) slotsOption { return func(s *slots) { s.clock = clk } }

// add schedules tick on schedule (its text, the cron key) shifted by
// sched's offset: a first tick that offset from now, then the schedule's
// ticks, all under polls. log reports a panic of tick. It returns the
// handle remove takes, nil when stopping.
func (s *slots) add(polls context.Context, schedule string, sched shifted, log *slog.Logger, tick func(context.Context)) *member {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil
	}
	k := slotKey{schedule: schedule, offset: sched.offset.Truncate(slotQuantum)}
	m := &member{key: k, tick: tick, log: log}
	sl := s.bySlot[k]
	if sl == nil {
		// The slot's first run is the schedule's first tick after its
		// members' first ones: @every counts from its own runs, so that
		// first run sets the phase, and slots made at one moment spread
		// like their offsets.
		sl = &slot{sched: shifted{Schedule: sched.Schedule, offset: k.offset}, polls: polls, members: map[*member]struct{}{}}
		s.schedule(k, sl, s.wall().Add(k.offset))
		s.bySlot[k] = sl
	}
	if !s.watching {
		s.watching = true
		steady := clock.NewSteady(s.clock)
		steady.Now() // the reading the first step is measured from
		go s.watchClock(steady)
	}
	sl.members[m] = struct{}{}
	m.first = time.AfterFunc(sched.offset, func() { s.start(polls, m) })
	return m
}

// schedule makes sl's cron entry, its first run the schedule's first tick
// after from.
func (s *slots) schedule(k slotKey, sl *slot, from time.Time) {
	start := sl.sched.Next(from)
	sl.entry = s.cron.Schedule(&firstAt{Schedule: sl.sched, start: start}, cron.FuncJob(func() { s.fire(sl.polls, k) }))
}

// wall is the wall time of the slots' clock.
func (s *slots) wall() time.Time {
	w, _ := s.clock.Read()
	return w
}

// remove unschedules m (nil: nothing); a poll of it already running goes on.
func (s *slots) remove(m *member) {
	if m == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m.first.Stop()
	sl := s.bySlot[m.key]
	if sl == nil {
		return
	}
	delete(sl.members, m)
	if len(sl.members) == 0 {
		s.cron.Remove(sl.entry)
		delete(s.bySlot, m.key)
	}
}

// entries is the number of cron entries in use.
func (s *slots) entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bySlot)
}

// fire is a slot's cron job: a poll for each of its accounts.
func (s *slots) fire(polls context.Context, k slotKey) {
	s.mu.Lock()
	sl := s.bySlot[k]
	var members []*member
	if sl != nil {
		members = make([]*member, 0, len(sl.members))
		for m := range sl.members {
			members = append(members, m)
		}
	}
	s.mu.Unlock()
	for _, m := range members {
		s.start(polls, m)
	}
}

// start runs one tick of m on a worker, unless stopping.
func (s *slots) start(polls context.Context, m *member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	s.ticks.Add(1)
	job := func() {
		defer s.ticks.Done()
		defer func() {
			if r := recover(); r != nil {
				m.log.Error("poll panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		m.tick(polls)
	}
	select {
	case s.work <- job:
	default:
		go s.worker(job)
	}
}

// worker runs job, then whatever start hands it, until enough others
// wait for work or none came for workerIdle.
func (s *slots) worker(job func()) {
	timer := time.NewTimer(workerIdle)
	defer timer.Stop()
	for {
		job()
		s.mu.Lock()
		if s.idle >= maxIdleWorkers {
			s.mu.Unlock()
			return
		}
		s.idle++
		s.mu.Unlock()
		timer.Reset(workerIdle)
		var ok bool
		select {
		case job, ok = <-s.work:
		case <-timer.C:
		}
		s.mu.Lock()
		s.idle--
		s.mu.Unlock()
		if !ok {
			return // idle for workerIdle, or stopped
		}
	}
}

// stop starts no more polls and waits for the running ones until ctx ends;
// then it calls cancel (the polls' context) and waits at most grace more.
// It reports whether every poll ended.
func (s *slots) stop(ctx context.Context, cancel context.CancelFunc, grace time.Duration) bool {
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		close(s.work) // idle workers end; start sends no more
		close(s.quit)
	}
	for _, sl := range s.bySlot {
		for m := range sl.members {
			m.first.Stop()
		}
	}
	s.mu.Unlock()
	<-s.cron.Stop().Done() // slot jobs only start polls: they end at once
	done := make(chan struct{})
	go func() {
		s.ticks.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	s.log.Warn("polls still running at the shutdown timeout; cancelling them")
	cancel()
	select {
	case <-done:
		return true
	case <-time.After(grace):
		return false
	}
}
