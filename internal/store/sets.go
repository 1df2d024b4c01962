package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// bucketSets holds an account's decided change sets (see SetMark), keyed
// by the set's lowest history id. It is created with the account's next
// commit, so files written before it need no migration.
var bucketSets = []byte("sets")

// SetMark records a change set that webhook conditions have decided: one
// that made an order.changed event, or one whose verdict read the order as
// the API returned it at the time (a later re-read could see the order
// changed and decide otherwise). A look-back re-read passes over a set
// that overlaps a mark of the same order, so a set is decided once.
// A set decided from its entries alone needs no mark: re-reading it decides
// the same.
type SetMark struct {
	Lo, Hi  int64 // the set's lowest and highest history ids
	OrderID int64
}

// setMarkOf is the mark of an order.changed event's set.
func setMarkOf(ne *NewEvent) SetMark {
	m := SetMark{Lo: ne.Event.Change.HistoryID, Hi: ne.Event.Change.HistoryID, OrderID: ne.OrderID}
	for _, e := range ne.Event.ChangeSet {
		m.Hi = max(m.Hi, e.HistoryID)
	}
	return m
}

// Set mark records: Hi, order id, written (unix seconds).
func putSetMark(b *bolt.Bucket, m SetMark, at time.Time) error {
	v := binary.BigEndian.AppendUint64(u64(uint64(m.Hi)), uint64(m.OrderID))
	v = binary.BigEndian.AppendUint64(v, uint64(at.Unix()))
	return b.Put(u64(uint64(m.Lo)), v)
}

// SetMarks returns the marks of the sets whose lowest history id is in
// [from, to], in id order.
func (s *Store) SetMarks(account string, from, to int64) ([]SetMark, error) {
	var out []SetMark
	err := s.view(func(tx *bolt.Tx) error {
		b := sub(accountBucket(tx, account), bucketSets)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(uint64(max(from, 0)))); k != nil; k, v = c.Next() {
			lo, err := keyU64(k)
			if err != nil {
				return err
			}
			if int64(lo) > to {
				break
			}
			if len(v) != 24 {
				return fmt.Errorf("%w: change set mark %d", ErrCorrupt, lo)
			}
			out = append(out, SetMark{Lo: int64(lo), Hi: int64(binary.BigEndian.Uint64(v)), OrderID: int64(binary.BigEndian.Uint64(v[8:]))})
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "change sets of %s", account)
	}
	return out, nil
}

// setSeen reports whether an order.changed event's set was emitted (or
// replayed) before, and otherwise marks it; the status events' seen ids
// are a different key space (a set's lowest id is often a status entry's).
func setSeen(acct *bolt.Bucket, ne *NewEvent, at time.Time) (bool, error) {
	b, err := acct.CreateBucketIfNotExists(bucketSets)
	if err != nil {
		return false, err
	}
	if has(b, u64(uint64(ne.Event.Change.HistoryID))) {
		return true, nil
	}
	return false, putSetMark(b, setMarkOf(ne), at)
}

// putSetMarks records decided sets that made no event.
func putSetMarks(acct *bolt.Bucket, marks []SetMark, at time.Time) error {
	if len(marks) == 0 {
		return nil
	}
	b, err := acct.CreateBucketIfNotExists(bucketSets)
	if err != nil {
		return err
	}
	for _, m := range marks {
		if err := putSetMark(b, m, at); err != nil {
			return err
		}
	}
	return nil
}

// pruneSets deletes the marks of sets wholly below the look-back window:
// no poll re-reads them.
func pruneSets(acct *bolt.Bucket, below int64) error {
	b := acct.Bucket(bucketSets)
	if b == nil || below <= 0 {
		return nil
	}
	var dead [][]byte
	end := u64(uint64(below))
	c := b.Cursor()
	for k, v := c.First(); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
		if len(v) == 24 && int64(binary.BigEndian.Uint64(v)) >= below {
			continue // a set the window still reaches into
		}
		dead = append(dead, k)
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// changed reports whether ne is an order.changed event (deduplicated by
// its set, not by the seen ids).
func changed(ne *NewEvent) bool { return ne.Event.Type == event.Changed }
