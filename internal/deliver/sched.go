package deliver

import (
	"container/heap"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// storeRetry is how long a group waits before touching the store again
// after the store failed it.
const storeRetry = time.Second

// recoverAfter failed attempts in a row, over at least recoverSpan, make
// a webhook's next success mean "the receiver is back": its retries are
// then due at once instead of at their backed-off times, so a backlog
// drains at full speed; the first failure ends that. Failures of single
// orders between successes never add up to that, so their backoff holds.
const (
	recoverAfter = 5
	recoverSpan  = 10 * time.Second
)

// aheadSlots is how many times a webhook's concurrency one read of its due
// index takes: what the free slots cannot start yet is held until they
// free, so a busy queue is read once per window, not once per attempt.
// Held items count against the global cap, so a read that would leave
// less than half of it free takes only what the free slots start.
const aheadSlots = 4

// farFuture is a time after every due key.
var farFuture = time.Unix(1<<62, 0)

// groupKey names one webhook's queue of one account.
type groupKey struct{ account, webhook string }

// groupState is what the scheduler does with a group's queue.
type groupState int

const (
	// active: the webhook is configured; its due items are sent.
	active groupState = iota
	// removing: the account is configured, the webhook no longer is
	// (removed or renamed). Once its attempts in flight have ended, its
	// pending events are dead-lettered in chunks.
	removing
	// detached: the account left the config. The group is forgotten
	// once its attempts in flight have ended; the queue stays untouched
	// in the store (the account may move to another instance).
	detached
)

// series are a group's metrics, looked up once.
type series struct {
	ok, retry, dead prometheus.Counter
	latency         prometheus.Observer
}

// group is the scheduler's view of one queue: its settings, what is in
// flight, and when its earliest due item not in flight is due. It holds no
// outbox item beyond a window of its concurrency read ahead: the rest
// stay in the store until they are due and a slot is free.
type group struct {
	key        groupKey
	wh         config.Webhook // current settings; attempts in flight keep the ones they started with
	state      groupState
	inflight   map[uint64]int64 // Seq -> order id of the attempts in flight, sending or storing their outcome
	orders     map[int64]int    // order id -> attempts in flight (0, no order, not kept)
	sending    int              // attempts waiting for the receiver: they hold the webhook's slots
	ahead      []store.Item     // read ahead of the free slots, in flight for Due, not started
	removal    bool             // a removal chunk is in flight
	next       time.Time        // when the queue may have work; zero: now
	failures   int              // failed attempts in a row
	failedAt   time.Time        // the first of them
	okAt       time.Time        // when the last successful attempt was sent
	recovering bool             // a success followed recoverAfter failures: retries are due now
	stale      time.Time        // a due key past maxWait that the last read left behind: the next read takes it (see unstale)
	warned     bool             // such a key was logged
	idx        int              // index in the ready heap, -1 when not in it
	series     *series
	log        *slog.Logger
}

// slots is the webhook's concurrency.
func (g *group) slots() int { return max(g.wh.Concurrency, 1) }

// free is how many more attempts the webhook's concurrency allows.
func (g *group) free() int { return g.slots() - g.sending }

// idle reports whether nothing of the group is in flight.
func (g *group) idle() bool { return len(g.inflight) == 0 && !g.removal }

// busy tells Due which items to pass over: those in flight, and every item
// of an order that has one in flight (one attempt per order at a time).
func (g *group) busy(seq uint64, order int64) bool {
	if _, ok := g.inflight[seq]; ok {
		return true
	}
	return order != 0 && g.orders[order] > 0
}

// work is one unit the Dispatcher starts in a goroutine: an attempt of
// item, or (remove) a chunk of a removed webhook's queue to dead-letter.
// The goroutine reads only key, wh, item, series and log; g and sent are
// the scheduler's.
type work struct {
	g      *group
	key    groupKey
	wh     config.Webhook
	item   store.Item
	remove bool
	series *series
	log    *slog.Logger
	sent   bool // the attempt gave back its slot
}

// resultKind is what came of a unit of work.
type resultKind int

const (
	finished    resultKind = iota // the outcome is in the store (or the item was gone)
	cancelled                     // shutdown cut the attempt short: nothing recorded
	storeFailed                   // the outcome could not be stored: try again after storeRetry
)

// result reports a unit of work back to the scheduler. An attempt reports
// twice: once sent (the receiver answered: its slot is free for the next
// order while the outcome is written, which takes an fsync), then with
// its kind once the outcome is in the store. Until then the item stays in
// flight, so it is never handed out twice, and its order's next event is
// not due before the store has it.
type result struct {
	w    *work
	sent bool
	kind resultKind
	more bool // removal: the chunk was full, the queue may hold more
	// The receiver's answer to an attempt sent at "at": ok (a success)
	// or failed.
	ok, failed bool
	at         time.Time
}

// scheduler decides what to send when. It owns no goroutine and no clock:
// the Dispatcher's loop calls it with the time, and tests call it with a
// fake one. The schedule itself is in the store (the due index); the
// scheduler keeps per queue only what is in flight and the time its
// earliest due item not in flight is due, and a min-heap of the queues by
// that time, so idle queues cost nothing until notified.
type scheduler struct {
	st        *store.Store
	maxFlight int // global cap on work in flight
	inflight  int
	groups    map[groupKey]*group
	byAccount map[string]map[string]*group
	ready     readyHeap // queues that may have work, by next
	accounts  map[string]bool
	newGroup  func(groupKey) (*series, *slog.Logger)
}

func newScheduler(st *store.Store, maxFlight int, newGroup func(groupKey) (*series, *slog.Logger)) *scheduler {
	return &scheduler{
		st:        st,
		maxFlight: maxFlight,
		groups:    make(map[groupKey]*group),
		byAccount: make(map[string]map[string]*group),
		accounts:  make(map[string]bool),
		newGroup:  newGroup,
	}
}

// group returns the group of k, creating it in state.
func (s *scheduler) group(k groupKey, state groupState) *group {
	if g := s.groups[k]; g != nil {
		return g
	}
	sr, log := s.newGroup(k)
	g := &group{key: k, state: state, inflight: map[uint64]int64{}, orders: map[int64]int{}, idx: -1, series: sr, log: log}
	s.groups[k] = g
	if s.byAccount[k.account] == nil {
		s.byAccount[k.account] = make(map[string]*group)
	}
	s.byAccount[k.account][k.webhook] = g
	return g
}

// forget drops an idle group.
func (s *scheduler) forget(g *group) {
	s.unready(g)
	delete(s.groups, g.key)
	delete(s.byAccount[g.key.account], g.key.webhook)
	if len(s.byAccount[g.key.account]) == 0 {
		delete(s.byAccount, g.key.account)
	}
}

// Update applies the configured accounts. A webhook keeps its queue by
// name: a new URL or new settings apply to attempts started from now on.
// A webhook of a configured account that is gone is removed (its pending
// events dead-lettered once its attempts in flight have ended); the groups
// of accounts that are gone are forgotten, their queues left as they are.
func (s *scheduler) Update(accounts []config.Account) {
	want := make(map[groupKey]config.Webhook)
	clear(s.accounts)
	for _, a := range accounts {
		s.accounts[a.Name] = true
		for _, wh := range a.Webhooks {
			want[groupKey{a.Name, wh.Name}] = wh
		}
	}
	for k, g := range s.groups {
		switch _, ok := want[k]; {
		case ok:
		case s.accounts[k.account]:
			s.remove(g)
		default:
			g.state = detached
			s.unready(g)
			s.release(g)
			if g.idle() {
				s.forget(g)
			}
		}
	}
	for k, wh := range want {
		g := s.group(k, active)
		g.wh, g.state = wh, active
		s.wake(g, time.Time{})
	}
}

// Found tells the scheduler which webhooks have pending events in the
// store for account. Those of a configured account that the config does
// not have are removed: their events never go to another URL.
func (s *scheduler) Found(account string, webhooks []string) {
	if !s.accounts[account] {
		return
	}
	for _, w := range webhooks {
		if g := s.groups[groupKey{account, w}]; g == nil || g.state != active {
			s.remove(s.group(groupKey{account, w}, removing))
		}
	}
}

// remove starts removing g's queue.
func (s *scheduler) remove(g *group) {
	s.release(g)
	if g.state != removing {
		g.log.Warn("webhook no longer configured; its pending events will be dead-lettered once its attempts in flight end",
			"reason", ReasonRemoved)
	}
	g.state = removing
	s.wake(g, time.Time{})
}

// Notify marks account's queues as possibly due now: a poll committed
// events, or dead letters were moved back.
func (s *scheduler) Notify(account string) {
	for _, g := range s.byAccount[account] {
		s.wake(g, time.Time{})
	}
}

// wake puts g in the ready heap with work possibly due at "at" (zero: now),
// unless it has no free slot or nothing to do (a webhook configured again
// while a removal chunk runs waits for the chunk); an earlier time already
// known stays.
func (s *scheduler) wake(g *group, at time.Time) {
	switch {
	case g.state == active && g.free() > 0 && !g.removal:
	case g.state == removing && g.idle():
	default:
		s.unready(g)
		return
	}
	if g.idx >= 0 {
		if at.Before(g.next) {
			g.next = at
			heap.Fix(&s.ready, g.idx)
		}
		return
	}
	g.next = at
	heap.Push(&s.ready, g)
}

func (s *scheduler) unready(g *group) {
	if g.idx >= 0 {
		heap.Remove(&s.ready, g.idx)
	}
}

// Next returns the work to start at now, and when to call again if no
// outcome comes first (zero: only after an outcome or a notification). For
// each queue whose earliest due time has come, in that order, it reads the
// due index from the start, passes over what is in flight and takes up to
// aheadSlots times the webhook's concurrency, within the global cap; what
// does not fit the free slots is held (read ahead) until a slot frees.
func (s *scheduler) Next(now time.Time) (out []*work, wake time.Time) {
	for len(s.ready) > 0 {
		g := s.ready[0]
		if g.next.After(now) {
			break
		}
		if g.state == removing {
			if s.inflight >= s.maxFlight {
				break
			}
			s.unready(g)
			g.removal = true
			s.inflight++
			out = append(out, &work{g: g, key: g.key, remove: true, series: g.series, log: g.log})
			continue
		}
		if g.free() <= 0 { // the concurrency was lowered by a reload
			s.unready(g)
			continue
		}
		read, next := len(g.ahead) == 0, time.Time{}
		if read {
			room := s.maxFlight - s.inflight
			if room <= 0 {
				break // the global cap: wait for an outcome
			}
			until := now
			if g.stale.After(until) {
				until = g.stale
			}
			g.stale = time.Time{}
			if g.recovering {
				until = farFuture
			}
			want := aheadSlots * g.slots()
			if room-want < s.maxFlight/2 {
				want = g.free() // near the global cap: hold nothing other webhooks could start
			}
			items, n, err := s.st.Due(g.key.account, g.key.webhook, until, min(want, room), g.busy)
			if err != nil {
				g.log.Error("cannot read the outbox; retrying", "error", err)
				g.next = now.Add(storeRetry)
				heap.Fix(&s.ready, g.idx)
				continue
			}
			for _, it := range items {
				g.inflight[it.Seq] = it.OrderID
				if it.OrderID != 0 {
					g.orders[it.OrderID]++
				}
				s.inflight++
			}
			g.ahead, next = items, unstale(g, now, n)
			if g.recovering && !next.IsZero() {
				next = now // more retries waiting: read again when a slot frees
			}
		}
		start := min(g.free(), len(g.ahead))
		for _, it := range g.ahead[:start] {
			g.sending++
			out = append(out, &work{g: g, key: g.key, wh: g.wh, item: it, series: g.series, log: g.log})
		}
		g.ahead = g.ahead[start:]
		switch {
		case g.free() <= 0:
			s.unready(g) // full: a sent attempt brings it back
		case !read:
			g.next = time.Time{} // read ahead used up with slots to spare: read now
			heap.Fix(&s.ready, g.idx)
		case next.IsZero():
			s.unready(g) // nothing left: an outcome or a notification brings it back
		default:
			g.next = next
			heap.Fix(&s.ready, g.idx)
		}
	}
	if len(s.ready) > 0 && s.inflight < s.maxFlight {
		wake = s.ready[0].next
	}
	return out, wake
}

// release gives back g's read-ahead items, not started.
func (s *scheduler) release(g *group) {
	for _, it := range g.ahead {
		delete(g.inflight, it.Seq)
		if o := it.OrderID; o != 0 {
			if g.orders[o]--; g.orders[o] <= 0 {
				delete(g.orders, o)
			}
		}
		s.inflight--
	}
	g.ahead = nil
}

// Stop gives back every read-ahead item: nothing new starts, and what is
// in flight is only what runs.
func (s *scheduler) Stop() {
	for _, g := range s.groups {
		s.release(g)
	}
}

// Done takes back a unit of work Next handed out, or its slot (r.sent).
func (s *scheduler) Done(r result, now time.Time) {
	w, g := r.w, r.w.g
	if !w.remove && !w.sent {
		w.sent = true
		g.sending--
	}
	if r.sent {
		s.wake(g, time.Time{})
		return
	}
	s.inflight--
	if w.remove {
		g.removal = false
	} else {
		delete(g.inflight, w.item.Seq)
		if o := w.item.OrderID; o != 0 {
			if g.orders[o]--; g.orders[o] <= 0 {
				delete(g.orders, o)
			}
		}
	}
	switch {
	case r.ok:
		if g.failures >= recoverAfter && now.Sub(g.failedAt) >= recoverSpan && !g.recovering {
			g.recovering = true
			g.log.Info("receiver answers again after failing; sending the events waiting for a retry now", "failures", g.failures)
		}
		g.failures = 0
		if r.at.After(g.okAt) {
			g.okAt = r.at
		}
	case r.failed && !r.at.Before(g.okAt):
		// (A failure of an attempt sent before one that succeeded says
		// nothing about the receiver now.)
		if g.failures == 0 {
			g.failedAt = now
		}
		g.failures++
		g.recovering = false
	}
	at := time.Time{} // the order's next event, or the slot, may be due now
	if r.kind == storeFailed {
		at = now.Add(storeRetry)
	}
	switch g.state {
	case detached:
		if g.idle() {
			s.forget(g)
		}
	case removing:
		if w.remove && r.kind == finished && !r.more {
			g.log.Info("removed webhook's queue is empty")
			s.forget(g)
			return
		}
		s.wake(g, at)
	default:
		s.wake(g, at)
	}
}

// InFlight is the number of units of work out.
func (s *scheduler) InFlight() int { return s.inflight }

// readyHeap orders groups by next.
type readyHeap []*group

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *readyHeap) Push(x any) {
	g := x.(*group)
	g.idx = len(*h)
	*h = append(*h, g)
}
func (h *readyHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	g.idx = -1
	*h = old[:len(old)-1]
	return g
}
