package poll

import (
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// mergeEntries is the most entries one mark covers when a tick extends its
// own last mark: marks stay few (at most look_back / mergeEntries + the
// ticks within look_back_time) and the look_back bound stays fine-grained.
const mergeEntries = 1000

// lookBack is the look-back state during one tick: the stored marks (found
// of them) followed by the stretches this tick passed. Marks are in cursor
// order; each covers the ids from its Cursor up to the next mark's.
type lookBack struct {
	marks []store.Mark
	found int           // marks[:found] were stored before the tick
	time  time.Duration // look_back_time
	bound int           // look_back: the most entries the marks may cover
}

func newLookBack(stored []store.Mark, lookBackTime time.Duration, bound int) *lookBack {
	marks := append([]store.Mark(nil), stored...)
	return &lookBack{marks: marks, found: len(marks), time: lookBackTime, bound: max(bound, 0)}
}

// start is where a tick starts reading: the oldest mark, else the cursor.
func (lb *lookBack) start(cursor int64) int64 {
	if len(lb.marks) == 0 {
		return cursor
	}
	return min(lb.marks[0].Cursor, cursor)
}

// pass records that a commit at time at moved the cursor over entries
// entries above from, the ids above youngFrom needing a look-back (entries
// older by the server's clock than twice look_back_time were committed
// long ago; youngFrom >= the range's top means none). It returns how many
// entries fell out of the window because the marks would cover more than
// look_back.
func (lb *lookBack) pass(youngFrom int64, entries int, at time.Time) (dropped int) {
	if lb.bound == 0 || entries <= 0 {
		return 0
	}
	if n := len(lb.marks); n > lb.found && lb.marks[n-1].Entries+entries <= mergeEntries {
		last := &lb.marks[n-1]
		last.At, last.Entries = at, last.Entries+entries
	} else {
		lb.marks = append(lb.marks, store.Mark{At: at, Cursor: youngFrom, Entries: entries})
	}
	total := 0
	for _, m := range lb.marks {
		total += m.Entries
	}
	for total > lb.bound && len(lb.marks) > 0 {
		total -= lb.marks[0].Entries
		dropped += lb.marks[0].Entries
		lb.drop(0)
	}
	return dropped
}

// retire removes the stored marks that a successful tick started at
// tickStart re-read late enough: at least look_back_time after they were
// set. A later mark's stretch joins the one before it, so its entries are
// counted there.
func (lb *lookBack) retire(tickStart time.Time) {
	for i := 0; i < lb.found; {
		if lb.marks[i].At.Add(lb.time).After(tickStart) {
			i++
			continue
		}
		lb.drop(i)
	}
}

func (lb *lookBack) drop(i int) {
	if i > 0 {
		lb.marks[i-1].Entries += lb.marks[i].Entries
	}
	lb.marks = append(lb.marks[:i], lb.marks[i+1:]...)
	if i < lb.found {
		lb.found--
	}
}

// changed reports whether the marks differ from stored.
func (lb *lookBack) changed(stored []store.Mark) bool {
	if len(stored) != len(lb.marks) {
		return true
	}
	for i, m := range stored {
		if !m.At.Equal(lb.marks[i].At) || m.Cursor != lb.marks[i].Cursor || m.Entries != lb.marks[i].Entries {
			return true
		}
	}
	return false
}
