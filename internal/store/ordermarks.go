package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// Order marks: per order, what the poller already emitted and when, so
// that a look-back or the orders sweep never emits an order's transition
// twice.

// OrderMark is what the account knows about one order's transitions into
// target statuses: the orders sweep reads an order's history only when the
// order's statusUpdatedAt is later than At.
type OrderMark struct {
	OrderID int64
	At      time.Time // the latest transition handled: emitted, or checked by a sweep
	Created bool      // its order.created event was emitted: never a second one
}

// OrderMarks returns the marks of the given orders; orders without one are
// absent from the map.
func (s *Store) OrderMarks(account string, ids []int64) (map[int64]OrderMark, error) {
	out := make(map[int64]OrderMark, len(ids))
	err := s.view(func(tx *bolt.Tx) error {
		b := sub(accountBucket(tx, account), bucketOrders)
		if b == nil {
			return nil
		}
		for _, id := range ids {
			if v := b.Get(u64(uint64(id))); v != nil {
				m, err := decodeOrderMark(id, v)
				if err != nil {
					return err
				}
				out[id] = m
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "order marks of %s", account)
	}
	return out, nil
}

// markOrder moves the order mark of ne's order up to its change; false
// (and no write) for a second order.created of one order.
func markOrder(orders *bolt.Bucket, ne *NewEvent, at time.Time) (bool, error) {
	m := OrderMark{OrderID: ne.OrderID}
	if v := orders.Get(u64(uint64(ne.OrderID))); v != nil {
		var err error
		if m, err = decodeOrderMark(ne.OrderID, v); err != nil {
			return false, err
		}
	}
	created := ne.Event.Type == event.Created
	if created && m.Created {
		return false, nil
	}
	return true, putOrderMark(orders, OrderMark{OrderID: ne.OrderID, At: ne.ChangedAt, Created: created}, at)
}

// Order mark records: version byte, At (unix ns, 0 for none), created
// flag, written (unix seconds, for pruning).
const orderMarkV1 = 1

func putOrderMark(b *bolt.Bucket, m OrderMark, written time.Time) error {
	if old := b.Get(u64(uint64(m.OrderID))); old != nil {
		prev, err := decodeOrderMark(m.OrderID, old)
		if err != nil {
			return err
		}
		if prev.At.After(m.At) {
			m.At = prev.At
		}
		m.Created = m.Created || prev.Created
	}
	v := []byte{orderMarkV1}
	var ns int64
	if !m.At.IsZero() {
		ns = m.At.UnixNano()
	}
	v = binary.BigEndian.AppendUint64(v, uint64(ns))
	v = appendBool(v, m.Created)
	v = binary.BigEndian.AppendUint64(v, uint64(written.Unix()))
	return b.Put(u64(uint64(m.OrderID)), v)
}

func decodeOrderMark(id int64, v []byte) (OrderMark, error) {
	if len(v) != 18 || v[0] != orderMarkV1 || v[9] > 1 {
		return OrderMark{}, fmt.Errorf("%w: order mark of %d", ErrCorrupt, id)
	}
	m := OrderMark{OrderID: id, Created: v[9] == 1}
	if ns := int64(binary.BigEndian.Uint64(v[1:9])); ns != 0 {
		m.At = time.Unix(0, ns).UTC()
	}
	return m, nil
}

// orderMarkWritten is when a mark record was last written.
func orderMarkWritten(v []byte) time.Time {
	if len(v) != 18 {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint64(v[10:])), 0)
}
