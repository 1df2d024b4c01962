package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// Mark is a stretch of history ids the cursor passed: the ids above Cursor
// up to the next mark (or the cursor itself). An entry in it may still be
// uncommitted, so polls re-read the stretch until one that started at least
// look_back_time after At has done so.
type Mark struct {
	At      time.Time `json:"at"`                // when the cursor last passed ids of the stretch
	Cursor  int64     `json:"cursor"`            // the stretch starts above this id
	Entries int       `json:"entries,omitempty"` // history entries read in the stretch
}

// AccountState is an account's polling state.
type AccountState struct {
	Initialized bool  // false until the first commit (start_from applies)
	Cursor      int64 // highest history id handled
	// StartID is where the account started (start_from): transitions at or
	// below it are never emitted, by the poll or by the orders sweep.
	StartID     int64
	Marks       []Mark    // stretches still re-read, oldest first
	LastSuccess time.Time // last successful poll recorded in the file
	// SeenPruned is the seen set's pruning watermark: the highest history
	// id pruning deleted from it. Every id above it that was ever enqueued
	// is still in the set, so an id above it that is not there was never
	// enqueued; at or below it nothing can be told, and the orders sweep
	// never emits there. 0 until a prune deletes something.
	SeenPruned int64

	Removed Removal // the account left the config (see MarkRemoved); zero while configured
}

// keySeenPruned holds AccountState.SeenPruned, written by prune in the
// transaction that deletes the ids.
var keySeenPruned = []byte("seen_pruned")

// NewEvent is an event to enqueue, with what delivery needs beside it.
type NewEvent struct {
	Event      event.Event
	OrderID    int64
	DetectedAt time.Time
	// ChangedAt is the change's createdAt read in the account's time zone
	// (zero when it does not parse): the order mark the sweep compares with.
	ChangedAt time.Time
	// Webhooks, when not nil, are the only webhooks the event goes to
	// (those of the call that also name it): an order.changed event goes
	// to the webhooks whose condition held, a status event to those
	// without a condition. Nil: every webhook of the call.
	Webhooks []string `json:",omitempty"`
}

// Commit is everything one poll step writes, atomically.
type Commit struct {
	Events   []NewEvent // enqueued for every webhook in Webhooks; history ids recorded as seen
	Webhooks []string
	Cursor   int64  // new cursor (never lowered)
	Marks    []Mark // replaces the stored marks
	StartID  int64  // recorded by the first commit of an account only
	// Sets are decided change sets that made no event but must not be
	// decided again (see SetMark); those of order.changed events are
	// recorded with them.
	Sets  []SetMark
	At    time.Time
	Prune Prune
}

// Prune says which seen ids and order marks a commit may delete: seen ids
// below SeenBelow recorded before Before, and, with Orders, order marks
// written before Before. Pruning stops at the first seen id that is too
// young (ids rise with time), so it costs what it deletes.
type Prune struct {
	SeenBelow int64
	Before    time.Time
	Orders    bool // order marks are keyed by order: pruning them scans them all
}

// Sweep is what one orders sweep writes: the events it recovered and the
// orders it checked.
type Sweep struct {
	Events   []NewEvent
	Webhooks []string
	Orders   []OrderMark
	At       time.Time
	Prune    Prune
}

// State returns an account's state; a new account has the zero state.
func (s *Store) State(account string) (AccountState, error) {
	var st AccountState
	err := s.view(func(tx *bolt.Tx) error {
		b := sub(accountBucket(tx, account), bucketState)
		if b == nil {
			return nil
		}
		var err error
		st, err = readState(b)
		return err
	})
	if err != nil {
		return AccountState{}, wrapErr(err, "state of %s", account)
	}
	return st, nil
}

func readState(b *bolt.Bucket) (AccountState, error) {
	var st AccountState
	if v := b.Get(keyCursor); len(v) == 8 {
		st.Cursor = int64(binary.BigEndian.Uint64(v))
	}
	if v := b.Get(keyStartID); len(v) == 8 {
		st.StartID = int64(binary.BigEndian.Uint64(v))
	}
	st.Initialized = bytes.Equal(b.Get(keyInitialized), []byte{1})
	if v := b.Get(keySeenPruned); len(v) == 8 {
		st.SeenPruned = int64(binary.BigEndian.Uint64(v))
	}
	if v := b.Get(keyLastSuccess); len(v) == 12 {
		st.LastSuccess = time.Unix(int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint32(v[8:]))).UTC()
	}
	if v := b.Get(keyMarks); len(v) > 0 {
		if err := json.Unmarshal(v, &st.Marks); err != nil {
			return AccountState{}, fmt.Errorf("%w: marks: %v", ErrCorrupt, err)
		}
	}
	var err error
	if st.Removed, err = readRemoval(b); err != nil {
		return AccountState{}, err
	}
	return st, nil
}

func writeState(b *bolt.Bucket, st AccountState) error {
	marks, err := json.Marshal(st.Marks)
	if err != nil {
		return err
	}
	initialized := []byte{0}
	if st.Initialized {
		initialized[0] = 1
	}
	for _, kv := range []struct{ k, v []byte }{
		{keyCursor, u64(uint64(st.Cursor))},
		{keyStartID, u64(uint64(st.StartID))},
		{keyInitialized, initialized},
		{keyMarks, marks},
	} {
		if err := b.Put(kv.k, kv.v); err != nil {
			return err
		}
	}
	return writeLastSuccess(b, st.LastSuccess)
}

func writeLastSuccess(b *bolt.Bucket, t time.Time) error {
	if t.IsZero() {
		return b.Delete(keyLastSuccess)
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))
	return b.Put(keyLastSuccess, binary.BigEndian.AppendUint32(v, uint32(t.Nanosecond())))
}

// RecordLastSuccess stores the time of each account's last successful
// poll in one transaction. Polls keep it in memory (an idle poll writes
// nothing); the daemon records it when it stops, so `poller status` read
// from the file shows it too. Accounts without state are left out.
func (s *Store) RecordLastSuccess(times map[string]time.Time) error {
	err := s.update(func(tx *bolt.Tx) error {
		for account, t := range times {
			b := sub(accountBucket(tx, account), bucketState)
			if b == nil || t.IsZero() {
				continue
			}
			if err := writeLastSuccess(b, t); err != nil {
				return err
			}
		}
		return nil
	})
	return wrapErr(err, "record last success")
}

// Seen reports which of the history ids in (from, to] are recorded as seen.
func (s *Store) Seen(account string, from, to int64) (map[int64]bool, error) {
	seen := make(map[int64]bool)
	if to <= from || to <= 0 {
		return seen, nil
	}
	err := s.view(func(tx *bolt.Tx) error {
		b := sub(accountBucket(tx, account), bucketSeen)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek(u64(uint64(max(from+1, 0)))); k != nil; k, _ = c.Next() {
			v, err := keyU64(k)
			if err != nil {
				return err
			}
			id := int64(v)
			if id > to {
				break
			}
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "seen of %s", account)
	}
	return seen, nil
}

// CommitPoll writes a poll step in one transaction: the events (see
// addEvents), the cursor and marks; the first commit also records StartID
// and marks the account initialized.
func (s *Store) CommitPoll(account string, c Commit) error {
	if err := checkEvents(c.Events, c.Webhooks); err != nil {
		return fmt.Errorf("store: commit for %s: %w", account, err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		acct, err := createAccount(tx, account)
		if err != nil {
			return err
		}
		if _, err := addEvents(acct, c.Events, c.Webhooks, c.At); err != nil {
			return err
		}
		if err := putSetMarks(acct, c.Sets, c.At); err != nil {
			return err
		}
		if err := prune(acct, c.Prune); err != nil {
			return err
		}
		if err := pruneSets(acct, c.Prune.SeenBelow); err != nil {
			return err
		}
		state := acct.Bucket(bucketState)
		st, err := readState(state)
		if err != nil {
			return err
		}
		if !st.Initialized {
			st.StartID = c.StartID
		}
		st.Cursor = max(st.Cursor, c.Cursor)
		st.Marks = c.Marks
		st.LastSuccess = c.At
		st.Initialized = true
		return writeState(state, st)
	})
	return wrapErr(err, "commit for %s", account)
}

// CommitSweep writes what an orders sweep found in one transaction: the
// recovered events (see addEvents) and the marks of the orders it checked.
// The cursor and the look-back state are left alone. It returns the
// indexes of the events actually enqueued.
func (s *Store) CommitSweep(account string, c Sweep) ([]int, error) {
	if err := checkEvents(c.Events, c.Webhooks); err != nil {
		return nil, fmt.Errorf("store: sweep commit for %s: %w", account, err)
	}
	var added []int
	err := s.update(func(tx *bolt.Tx) error {
		acct, err := createAccount(tx, account)
		if err != nil {
			return err
		}
		if added, err = addEvents(acct, c.Events, c.Webhooks, c.At); err != nil {
			return err
		}
		orders := acct.Bucket(bucketOrders)
		for _, m := range c.Orders {
			if err := putOrderMark(orders, m, c.At); err != nil {
				return err
			}
		}
		return prune(acct, c.Prune)
	})
	if err != nil {
		return nil, wrapErr(err, "sweep commit for %s", account)
	}
	return added, nil
}

func checkEvents(evs []NewEvent, webhooks []string) error {
	if len(evs) > 0 && len(webhooks) == 0 {
		return fmt.Errorf("%d events but no webhooks", len(evs))
	}
	for i := range evs {
		for _, w := range evs[i].Webhooks {
			if w == "" {
				return fmt.Errorf("event %q: empty webhook name", evs[i].Event.ID)
			}
		}
	}
	for _, w := range webhooks {
		if w == "" {
			return fmt.Errorf("empty webhook name")
		}
	}
	for i := range evs {
		if id := evs[i].Event.Change.HistoryID; id <= 0 {
			return fmt.Errorf("event %q has history id %d", evs[i].Event.ID, id)
		}
	}
	return nil
}

// addEvents enqueues the events that are new: an event whose history id
// is already seen is skipped (a retried commit, or the poll and the sweep
// both finding it, never duplicates), and so is a second order.created of
// one order. Each enqueued event's history id is recorded as seen (with
// the time, so the seen set can be pruned by age) and its order's mark
// moves up to the change. An order.changed event is deduplicated by its
// change set's mark instead (see SetMark) and leaves the seen ids and
// order marks, which are the status rules', alone; so is an event none of
// webhooks takes. Returns the indexes of the enqueued events.
func addEvents(acct *bolt.Bucket, evs []NewEvent, webhooks []string, at time.Time) ([]int, error) {
	seen := acct.Bucket(bucketSeen)
	orders := acct.Bucket(bucketOrders)
	added := make([]int, 0, len(evs))
	fresh := make([]NewEvent, 0, len(evs))
	stamp := u64(uint64(at.Unix()))
	for i := range evs {
		ne := &evs[i]
		if len(targets(ne, webhooks)) == 0 {
			continue
		}
		if changed(ne) {
			dup, err := setSeen(acct, ne, at)
			if err != nil {
				return nil, err
			}
			if !dup {
				added = append(added, i)
				fresh = append(fresh, *ne)
			}
			continue
		}
		hid := u64(uint64(ne.Event.Change.HistoryID))
		if has(seen, hid) {
			continue
		}
		if ne.OrderID > 0 {
			ok, err := markOrder(orders, ne, at)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		if err := seen.Put(hid, stamp); err != nil {
			return nil, err
		}
		added = append(added, i)
		fresh = append(fresh, *ne)
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	return added, enqueue(acct, webhooks, fresh)
}

// raiseSeenPruned moves the watermark up to key, the highest id pruned
// (keys go in ascending order); it never goes down.
func raiseSeenPruned(state *bolt.Bucket, key []byte) error {
	if old := state.Get(keySeenPruned); len(old) == 8 && bytes.Compare(old, key) >= 0 {
		return nil
	}
	return state.Put(keySeenPruned, bytes.Clone(key))
}

// prune applies p (see Prune). Keys are collected first: deleting under a
// live bbolt cursor can skip entries.
func prune(acct *bolt.Bucket, p Prune) error {
	if p.SeenBelow <= 0 && !p.Orders {
		return nil
	}
	var dead [][]byte
	end := u64(uint64(max(p.SeenBelow, 0)))
	c := acct.Bucket(bucketSeen).Cursor()
	for k, v := c.First(); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
		if len(v) == 8 && !time.Unix(int64(binary.BigEndian.Uint64(v)), 0).Before(p.Before) {
			break // recorded within the retention: so, nearly always, is every later id
		}
		dead = append(dead, k)
	}
	for _, k := range dead {
		if err := acct.Bucket(bucketSeen).Delete(k); err != nil {
			return err
		}
	}
	if len(dead) > 0 {
		if err := raiseSeenPruned(acct.Bucket(bucketState), dead[len(dead)-1]); err != nil {
			return err
		}
	}
	if !p.Orders {
		return nil
	}
	dead = dead[:0]
	orders := acct.Bucket(bucketOrders)
	err := orders.ForEach(func(k, v []byte) error {
		if orderMarkWritten(v).Before(p.Before) {
			dead = append(dead, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range dead {
		if err := orders.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
