package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// Item records are a versioned binary format rather than JSON: the delivery
// path decodes every pending item, and the order is kept as raw bytes. Seq,
// Account and Webhook are not stored; they are the record's key and bucket.
const recordV1 = 1

// encodeItem returns it's record.
func encodeItem(it *Item) []byte {
	ev := &it.Event
	n := 64 + len(ev.ID) + len(ev.Type) + len(ev.Account) + len(ev.Change.Field) +
		len(ev.Change.OldValue) + len(ev.Change.NewValue) + len(ev.Change.Source) +
		len(ev.Change.CreatedAt) + len(ev.Order) + len(it.LastError) + len(it.DeadReason)
	b := make([]byte, 0, n)
	b = append(b, recordV1)
	b = appendString(b, ev.ID)
	b = appendString(b, string(ev.Type))
	b = appendString(b, ev.Account)
	b = binary.AppendVarint(b, ev.Change.HistoryID)
	b = appendString(b, ev.Change.Field)
	b = appendString(b, ev.Change.OldValue)
	b = appendString(b, ev.Change.NewValue)
	b = appendString(b, ev.Change.Source)
	b = appendString(b, ev.Change.CreatedAt)
	b = binary.AppendUvarint(b, uint64(len(ev.Order)))
	b = append(b, ev.Order...)
	b = appendBool(b, ev.OrderMissing)
	b = binary.AppendVarint(b, it.OrderID)
	b = appendTime(b, it.DetectedAt)
	b = binary.AppendVarint(b, int64(it.Attempts))
	b = appendTime(b, it.FirstAttempt)
	b = appendTime(b, it.NextAttempt)
	b = binary.AppendVarint(b, int64(it.LastStatus))
	b = appendString(b, it.LastError)
	b = appendTime(b, it.DeadAt)
	b = appendString(b, it.DeadReason)
	return b
}

// decodeItem parses a record into it (Seq, Account, Webhook untouched). It
// copies everything, so data may be bbolt memory that dies with the tx.
func decodeItem(data []byte, it *Item) error {
	if len(data) == 0 || data[0] != recordV1 {
		return fmt.Errorf("%w: unknown record format", ErrCorrupt)
	}
	r := reader{b: data[1:]}
	ev := &it.Event
	ev.ID = r.str()
	ev.Type = event.Type(r.str())
	ev.Account = r.str()
	ev.Change.HistoryID = r.varint()
	ev.Change.Field = r.str()
	ev.Change.OldValue = r.str()
	ev.Change.NewValue = r.str()
	ev.Change.Source = r.str()
	ev.Change.CreatedAt = r.str()
	if order := r.bytes(); len(order) > 0 {
		ev.Order = append(json.RawMessage(nil), order...)
	} else {
		ev.Order = nil
	}
	ev.OrderMissing = r.bool()
	it.OrderID = r.varint()
	it.DetectedAt = r.time()
	it.Attempts = int(r.varint())
	it.FirstAttempt = r.time()
	it.NextAttempt = r.time()
	it.LastStatus = int(r.varint())
	it.LastError = r.str()
	it.DeadAt = r.time()
	it.DeadReason = r.str()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return r.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendTime keeps the instant (seconds, nanoseconds) and drops the zone;
// times decode in UTC. A zero time is one 0 byte so it stays IsZero.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// reader decodes record fields; the first error sticks and later reads
// return zero values, so decodeItem checks once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("length")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.bytes()) }

func (r *reader) byte1() byte {
	if len(r.b) == 0 {
		r.fail("byte")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bool() bool {
	switch r.byte1() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bool")
	return false
}

func (r *reader) time() time.Time {
	if !r.bool() {
		return time.Time{}
	}
	sec := r.varint()
	nsec := r.uvarint()
	if nsec >= uint64(time.Second) {
		r.fail("time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
