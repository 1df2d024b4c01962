package deliver

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// group delivers one webhook's queue. One goroutine (run) owns all the
// scheduling state; workers only send and write their attempt's outcome to
// the store; an acker batches the delivered marks into shared transactions.
type group struct {
	d       *Dispatcher
	account string
	wh      config.Webhook
	prev    *group // a replaced group that must finish first
	log     *slog.Logger

	notify    chan struct{} // cap 1: the outbox gained items
	stop      chan struct{} // closed: take no new work
	stopOnce  sync.Once
	done      chan struct{} // closed when every goroutine of the group returned
	ok, retry prometheus.Counter
	dead      prometheus.Counter
	latency   prometheus.Observer
}

// concurrency is the number of workers; wh keeps the configured value so a
// reload compares configs, not defaults.
func (g *group) concurrency() int { return max(g.wh.Concurrency, 1) }

func (g *group) wake() {
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

func (g *group) close() { g.stopOnce.Do(func() { close(g.stop) }) }

// entry is one outbox item held in memory.
type entry struct {
	it   store.Item
	hidx int // index in the ready heap, -1 when not in it
}

// orderQ is one order's items: at most one in flight, the rest waiting in
// Seq order.
type orderQ struct {
	inflight *entry
	waiting  []*entry
}

// outcome kinds reported by workers.
type outcomeKind int

const (
	delivered   outcomeKind = iota // 2xx: the acker removes it from the store
	rescheduled                    // failed, NextAttempt stored
	finished                       // dead-lettered or gone from the store
	cancelled                      // shutdown cut the attempt short: nothing recorded
)

type outcome struct {
	e    *entry
	kind outcomeKind
}

// sched is the scheduling state owned by run.
type sched struct {
	orders     map[int64]*orderQ
	known      map[uint64]struct{} // every Seq in memory: waiting, in flight or awaiting its delivered mark
	ready      readyHeap           // heads of orders with nothing in flight
	cursor     uint64              // highest Seq loaded
	more       bool                // the outbox may hold items above cursor
	rescan     bool                // look below cursor for items moved back from dead letters
	notified   bool                // a notify came since the last read: read even a little
	lastRescan time.Time
	loadWait   time.Time // after a store error: no reads before this
	inflight   int
}

func (g *group) run(base, hard context.Context) {
	defer close(g.done)
	if g.prev != nil {
		// Even when stopped meanwhile: a successor waits on this group's
		// done, which must mean "nothing of this queue in flight".
		<-g.prev.done
	}
	select {
	case <-g.stop:
		return
	default:
	}
	conc := g.concurrency()
	work := make(chan *entry, conc) // never blocks: at most conc in flight
	results := make(chan outcome, conc)
	ackIn := make(chan uint64, g.d.opts.PageSize)
	acked := make(chan []uint64)
	loopDone := make(chan struct{})

	var workers sync.WaitGroup
	for range conc {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for e := range work {
				results <- g.attempt(base, hard, e, ackIn)
			}
		}()
	}
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		g.acker(ackIn, acked, loopDone)
	}()

	s := &sched{orders: make(map[int64]*orderQ), known: make(map[uint64]struct{}), more: true}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stopping := false
	stopCh := g.stop
	for {
		now := g.d.opts.Now()
		if !stopping {
			g.load(s, now)
			for s.inflight < conc && len(s.ready) > 0 && !s.ready[0].it.NextAttempt.After(now) {
				work <- s.take()
			}
		}
		if stopping && s.inflight == 0 {
			break
		}
		timer.Reset(g.nextWake(s, now, stopping))
		select {
		case <-g.notify:
			s.more, s.rescan, s.notified = true, true, true
		case r := <-results:
			s.inflight--
			g.handle(s, r)
		case seqs := <-acked:
			for _, q := range seqs {
				delete(s.known, q)
			}
		case <-timer.C:
		case <-stopCh:
			stopping, stopCh = true, nil
		}
	}
	close(loopDone)
	close(work)
	workers.Wait()
	close(ackIn)
	<-ackerDone
}

// nextWake is how long the loop may sleep: until the earliest scheduled
// head, the end of a store-error pause or the next allowed rescan; an hour
// when nothing is due. Only future times count: anything due now was done
// in this turn or waits for a worker, and a stopping group waits only for
// its workers.
func (g *group) nextWake(s *sched, now time.Time, stopping bool) time.Duration {
	wake := now.Add(time.Hour)
	if stopping {
		return time.Hour
	}
	at := func(t time.Time) {
		if t.After(now) && t.Before(wake) {
			wake = t
		}
	}
	if len(s.ready) > 0 && s.inflight < g.concurrency() {
		at(s.ready[0].it.NextAttempt)
	}
	if s.more {
		at(s.loadWait)
	}
	if s.rescan {
		at(s.lastRescan.Add(rescanEvery))
	}
	return wake.Sub(now)
}

// load reads outbox items into memory while there is room: first items
// below the cursor that are not in memory (dead letters moved back keep
// their old Seq), then new items above it.
func (g *group) load(s *sched, now time.Time) {
	if now.Before(s.loadWait) {
		return
	}
	page := g.d.opts.PageSize
	// A rescan re-reads every item below the cursor still in the store,
	// the ones in memory included: cheap when few are held, throttled when
	// many are (a backlog), so a busy queue is not decoded on every poll.
	if s.rescan && len(s.known) < page && (len(s.known) <= rescanFree || now.Sub(s.lastRescan) >= rescanEvery) {
		complete, err := g.loadBelow(s, page)
		if err != nil {
			g.storeError(s, now, err)
			return
		}
		s.rescan, s.lastRescan = !complete, now
	}
	// Read when at least half a page fits, or after a notify when anything
	// fits: small reads for fresh events, big ones for a backlog, never one
	// read per delivery.
	room := page - len(s.known)
	if !s.more || room <= 0 || (room < page/2 && !s.notified) {
		return
	}
	s.notified = false
	items, err := g.d.st.Pending(g.account, g.wh.Name, s.cursor, room)
	if err != nil {
		g.storeError(s, now, err)
		return
	}
	s.loadWait = time.Time{}
	for i := range items {
		g.add(s, items[i])
	}
	if len(items) > 0 {
		s.cursor = items[len(items)-1].Seq
	}
	s.more = len(items) == room
}

// loadBelow adds the items with Seq <= cursor that are not in memory;
// complete is false when it ran out of room before reaching the cursor.
func (g *group) loadBelow(s *sched, page int) (complete bool, err error) {
	var after uint64
	for after < s.cursor {
		items, err := g.d.st.Pending(g.account, g.wh.Name, after, page)
		if err != nil {
			return false, err
		}
		for i := range items {
			it := items[i]
			if it.Seq > s.cursor {
				return true, nil
			}
			if _, ok := s.known[it.Seq]; ok {
				continue
			}
			if len(s.known) >= page {
				return false, nil
			}
			g.add(s, it)
		}
		if len(items) < page {
			return true, nil
		}
		after = items[len(items)-1].Seq
	}
	return true, nil
}

func (g *group) storeError(s *sched, now time.Time, err error) {
	g.log.Error("cannot read the outbox; retrying", "error", err)
	s.loadWait = now.Add(storeRetry)
}

// orderKey groups an item's order; an item without an order id is alone.
func orderKey(it store.Item) int64 {
	if it.OrderID != 0 {
		return it.OrderID
	}
	return -int64(it.Seq)
}

// add puts a loaded item into its order's queue.
func (g *group) add(s *sched, it store.Item) {
	s.known[it.Seq] = struct{}{}
	g.enqueue(s, &entry{it: it, hidx: -1})
}

// enqueue inserts e into its order's waiting list in Seq order and keeps the
// ready heap holding exactly the head of each order with nothing in flight.
func (g *group) enqueue(s *sched, e *entry) {
	k := orderKey(e.it)
	q := s.orders[k]
	if q == nil {
		q = &orderQ{}
		s.orders[k] = q
	}
	i, _ := slices.BinarySearchFunc(q.waiting, e.it.Seq, func(x *entry, seq uint64) int {
		switch {
		case x.it.Seq < seq:
			return -1
		case x.it.Seq > seq:
			return 1
		}
		return 0
	})
	if i == 0 && len(q.waiting) > 0 && q.waiting[0].hidx >= 0 {
		heap.Remove(&s.ready, q.waiting[0].hidx) // no longer the head
	}
	q.waiting = slices.Insert(q.waiting, i, e)
	if q.inflight == nil && q.waiting[0].hidx < 0 {
		heap.Push(&s.ready, q.waiting[0])
	}
}

// take moves the most urgent due head in flight.
func (s *sched) take() *entry {
	e := heap.Pop(&s.ready).(*entry)
	q := s.orders[orderKey(e.it)]
	q.waiting = q.waiting[1:] // e was the head
	q.inflight = e
	s.inflight++
	return e
}

// handle applies a worker's outcome and releases the order's next item.
func (g *group) handle(s *sched, r outcome) {
	k := orderKey(r.e.it)
	q := s.orders[k]
	q.inflight = nil
	switch r.kind {
	case delivered:
		// Stays in known until the acker has removed it from the store, so
		// a rescan cannot load it again.
	case finished:
		delete(s.known, r.e.it.Seq)
		// A dead letter moved back before this outcome arrived was skipped
		// by a rescan as still known: look again.
		s.rescan = true
	case rescheduled, cancelled:
		g.enqueue(s, r.e)
		return
	}
	if len(q.waiting) > 0 {
		heap.Push(&s.ready, q.waiting[0])
	} else {
		delete(s.orders, k)
	}
}

// acker removes delivered items from the store, as many per transaction as
// have arrived, and tells the loop which marks are durable.
func (g *group) acker(in <-chan uint64, out chan<- []uint64, loopDone <-chan struct{}) {
	for seq := range in {
		batch := []uint64{seq}
	drain:
		for {
			select {
			case q, ok := <-in:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		g.markDelivered(batch)
		select {
		case out <- batch:
		case <-loopDone:
		}
	}
}

// markDelivered removes delivered items from the store, retrying a failing
// store for a while: while the marks are missing the items stay known, so
// this process does not send them again.
func (g *group) markDelivered(batch []uint64) {
	for try := 1; ; try++ {
		err := g.d.st.DeliveredMany(g.account, g.wh.Name, batch)
		if err == nil {
			return
		}
		if errors.Is(err, store.ErrClosed) || try == ackTries {
			// The events stay in the outbox and are sent again later: a
			// duplicate, never a loss.
			g.log.Error("cannot mark events delivered; they will be sent again", "count", len(batch), "error", err)
			return
		}
		g.log.Warn("cannot mark events delivered; retrying", "count", len(batch), "error", err)
		time.Sleep(storeRetry)
	}
}

// attempt sends e once and records the outcome in the store. The loop
// does not touch e while it is in flight.
func (g *group) attempt(base, hard context.Context, e *entry, ack chan<- uint64) outcome {
	it := &e.it
	now := g.d.opts.Now()
	res, err := Send(hard, g.d.opts.Client, g.wh, it.Event, g.d.opts.UserAgent, now)
	if err != nil && hard.Err() != nil {
		return outcome{e, cancelled}
	}
	if err == nil {
		ack <- it.Seq
		g.ok.Inc()
		g.latency.Observe(g.d.opts.Now().Sub(it.DetectedAt).Seconds())
		return outcome{e, delivered}
	}
	if it.FirstAttempt.IsZero() {
		it.FirstAttempt = now
	}
	it.Attempts++
	it.LastStatus = res.Status
	it.LastError = err.Error()
	reason := ""
	switch {
	case res.Status == 410:
		reason = ReasonGone
	case g.wh.Retry.MaxAttempts > 0 && it.Attempts >= g.wh.Retry.MaxAttempts:
		reason = ReasonMaxAttempts
	case g.wh.Retry.MaxAge > 0 && now.Sub(it.FirstAttempt) >= g.wh.Retry.MaxAge:
		reason = ReasonMaxAge
	}
	if reason != "" {
		return g.deadLetter(base, e, reason, now)
	}
	delay := max(jitter(g.d.opts.Backoff(it.Attempts)), res.RetryAfter)
	it.NextAttempt = now.Add(delay)
	g.retry.Inc()
	g.log.Warn("delivery failed, will retry", "event_id", it.Event.ID, "attempt", it.Attempts,
		"status", res.Status, "error", err, "next_attempt", it.NextAttempt)
	if err := g.d.st.Reschedule(*it); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			g.log.Info("event left the outbox while being delivered", "event_id", it.Event.ID)
			return outcome{e, finished}
		}
		// Kept in memory with the new schedule; a restart retries it sooner.
		g.log.Error("cannot store the retry schedule", "event_id", it.Event.ID, "error", err)
	}
	return outcome{e, rescheduled}
}

func (g *group) deadLetter(base context.Context, e *entry, reason string, now time.Time) outcome {
	it := &e.it
	if err := g.d.st.DeadLetter(*it, reason, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return outcome{e, finished}
		}
		g.log.Error("cannot store the dead letter; will retry", "event_id", it.Event.ID, "error", err)
		it.NextAttempt = now.Add(jitter(g.d.opts.Backoff(it.Attempts)))
		return outcome{e, rescheduled}
	}
	it.DeadAt, it.DeadReason = now, reason
	g.dead.Inc()
	g.log.Error("event dead-lettered", "event_id", it.Event.ID, "reason", reason,
		"attempts", it.Attempts, "status", it.LastStatus, "error", it.LastError)
	if pending, dead, err := g.d.st.Counts(g.account); err == nil {
		g.d.m.OutboxPending.WithLabelValues(g.account).Set(float64(pending))
		g.d.m.DeadLetters.WithLabelValues(g.account).Set(float64(dead))
	}
	if a := g.d.opts.Alerter; a != nil {
		a.DeadLetter(base, *it)
	}
	return outcome{e, finished}
}

// readyHeap orders order heads by NextAttempt (zero: due now), then Seq.
type readyHeap []*entry

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	a, b := h[i].it, h[j].it
	if !a.NextAttempt.Equal(b.NextAttempt) {
		return a.NextAttempt.Before(b.NextAttempt)
	}
	return a.Seq < b.Seq
}
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *readyHeap) Push(x any) {
	e := x.(*entry)
	e.hidx = len(*h)
	*h = append(*h, e)
}
func (h *readyHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.hidx = -1
	*h = old[:len(old)-1]
	return e
}
