package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	bolt "go.etcd.io/bbolt"
)

// Mark records where the cursor stood at a time; the look-back window keeps
// re-reading from the oldest mark younger than the look-back time.
type Mark struct {
	At     time.Time `json:"at"`
	Cursor int64     `json:"cursor"`
}

// AccountState is an account's polling state.
type AccountState struct {
	Initialized bool      // false until the first commit (start_from applies)
	Cursor      int64     // highest history id handled
	Marks       []Mark    // recent cursor positions, oldest first
	LastSuccess time.Time // last successful poll
}

// NewEvent is an event to enqueue, with what delivery needs beside it.
type NewEvent struct {
	Event      event.Event
	OrderID    int64
	DetectedAt time.Time
}

// Commit is everything one poll step writes, atomically.
type Commit struct {
	Events         []NewEvent // enqueued for every webhook in Webhooks; history ids recorded as seen
	Webhooks       []string
	Cursor         int64  // new cursor (never lowered)
	Marks          []Mark // replaces the stored marks
	PruneSeenBelow int64  // seen ids below this are deleted
	At             time.Time
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
	st.Initialized = bytes.Equal(b.Get(keyInitialized), []byte{1})
	if v := b.Get(keyLastSuccess); len(v) == 12 {
		st.LastSuccess = time.Unix(int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint32(v[8:]))).UTC()
	}
	if v := b.Get(keyMarks); len(v) > 0 {
		if err := json.Unmarshal(v, &st.Marks); err != nil {
			return AccountState{}, fmt.Errorf("%w: marks: %v", ErrCorrupt, err)
		}
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
	var last []byte
	if !st.LastSuccess.IsZero() {
		last = binary.BigEndian.AppendUint64(nil, uint64(st.LastSuccess.Unix()))
		last = binary.BigEndian.AppendUint32(last, uint32(st.LastSuccess.Nanosecond()))
	}
	for _, kv := range []struct{ k, v []byte }{
		{keyCursor, u64(uint64(st.Cursor))},
		{keyInitialized, initialized},
		{keyMarks, marks},
	} {
		if err := b.Put(kv.k, kv.v); err != nil {
			return err
		}
	}
	if last == nil {
		return b.Delete(keyLastSuccess)
	}
	return b.Put(keyLastSuccess, last)
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

// CommitPoll writes a poll step in one transaction: outbox items for each
// event and webhook, the seen ids, the cursor, marks and last success; prunes
// seen ids below c.PruneSeenBelow. Events whose history id is already seen
// are skipped, so a retried commit never duplicates.
func (s *Store) CommitPoll(account string, c Commit) error {
	if len(c.Events) > 0 && len(c.Webhooks) == 0 {
		return fmt.Errorf("store: commit for %s: %d events but no webhooks", account, len(c.Events))
	}
	for _, w := range c.Webhooks {
		if w == "" {
			return fmt.Errorf("store: commit for %s: empty webhook name", account)
		}
	}
	for i := range c.Events {
		if id := c.Events[i].Event.Change.HistoryID; id <= 0 {
			return fmt.Errorf("store: commit for %s: event %q has history id %d", account, c.Events[i].Event.ID, id)
		}
	}
	err := s.update(func(tx *bolt.Tx) error {
		acct, err := createAccount(tx, account)
		if err != nil {
			return err
		}
		seen := acct.Bucket(bucketSeen)
		var fresh []NewEvent
		for i := range c.Events {
			ne := &c.Events[i]
			hid := u64(uint64(ne.Event.Change.HistoryID))
			if has(seen, hid) {
				continue
			}
			if err := seen.Put(hid, nil); err != nil {
				return err
			}
			fresh = append(fresh, *ne)
		}
		if err := enqueue(acct, c.Webhooks, fresh); err != nil {
			return err
		}
		if c.PruneSeenBelow > 0 {
			if err := pruneBelow(seen, uint64(c.PruneSeenBelow)); err != nil {
				return err
			}
		}
		state := acct.Bucket(bucketState)
		st, err := readState(state)
		if err != nil {
			return err
		}
		st.Cursor = max(st.Cursor, c.Cursor)
		st.Marks = c.Marks
		st.LastSuccess = c.At
		st.Initialized = true
		return writeState(state, st)
	})
	if err != nil {
		return wrapErr(err, "commit for %s", account)
	}
	return nil
}

// pruneBelow deletes the keys of b below bound. Keys are collected first:
// deleting under a live bbolt cursor can skip entries.
func pruneBelow(b *bolt.Bucket, bound uint64) error {
	end := u64(bound)
	var ids []uint64
	c := b.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
		id, err := keyU64(k)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := b.Delete(u64(id)); err != nil {
			return err
		}
	}
	return nil
}
