package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// Records are a versioned binary format rather than JSON: the delivery path
// decodes every item it sends, and the order is kept as raw bytes. The
// first byte names the record kind and version, so a record in the wrong
// place (or a v1 record a migration has not moved yet) is recognised.
// Seq, Account and Webhook are not stored: they are the key and buckets.
const (
	recordV1      = 1 // schema 1: an outbox or dead item with its whole event (read by the migration only)
	recordEvent   = 2 // events/<seq>: the event, its order id and detection time
	recordAttempt = 3 // outbox/<webhook>/<seq> and dead/<webhook>/<seq>: attempt bookkeeping
)

// encodeEvent returns the event record of it: Event, OrderID, DetectedAt.
func encodeEvent(it *Item) []byte {
	ev := &it.Event
	n := 48 + len(ev.ID) + len(ev.Type) + len(ev.Account) + len(ev.Change.Field) +
		len(ev.Change.OldValue) + len(ev.Change.NewValue) + len(ev.Change.Source) +
		len(ev.Change.CreatedAt) + len(ev.Order)
	b := make([]byte, 0, n)
	b = append(b, recordEvent)
	b = binary.AppendVarint(b, it.OrderID)
	b = appendTime(b, it.DetectedAt)
	b = appendEventFields(b, ev)
	if !hasSet(ev) {
		return b
	}
	// An order.changed event's change set, source and user follow as one
	// JSON field: records of the other events end before it, as they
	// always did.
	set, _ := json.Marshal(setFields{ev.ChangeSet, ev.Source, ev.User}) // raw values decoded from JSON always marshal
	b = binary.AppendUvarint(b, uint64(len(set)))
	return append(b, set...)
}

// setFields is the tail of an order.changed event's record.
type setFields struct {
	ChangeSet []event.SetEntry `json:"changeSet"`
	Source    string           `json:"source,omitempty"`
	User      json.RawMessage  `json:"user,omitempty"`
}

func hasSet(ev *event.Event) bool {
	return len(ev.ChangeSet) > 0 || ev.Source != "" || len(ev.User) > 0
}

// decodeEvent parses an event record into it's Event, OrderID and
// DetectedAt. It copies everything, so data may be bbolt memory that dies
// with the transaction.
func decodeEvent(data []byte, it *Item) error {
	r, err := open(data, recordEvent)
	if err != nil {
		return err
	}
	it.OrderID = r.varint()
	it.DetectedAt = r.time()
	r.eventFields(&it.Event)
	if r.err == nil && len(r.b) > 0 {
		var set setFields
		if err := json.Unmarshal(r.raw(), &set); err != nil {
			r.fail("change set")
		}
		it.Event.ChangeSet, it.Event.Source, it.Event.User = set.ChangeSet, set.Source, set.User
	}
	return r.end()
}

// encodeAttempt returns the attempt record of it: OrderID, DetectedAt and
// the attempt bookkeeping, with DeadAt and DeadReason (zero in the
// outbox). The detection time is kept here too, so the due key of an item
// never attempted is known without reading its event.
func encodeAttempt(it *Item) []byte {
	b := make([]byte, 0, 64+len(it.LastError)+len(it.DeadReason))
	b = append(b, recordAttempt)
	b = binary.AppendVarint(b, it.OrderID)
	b = appendTime(b, it.DetectedAt)
	return appendAttemptFields(b, it)
}

// decodeAttempt parses an attempt record into it (Event untouched).
func decodeAttempt(data []byte, it *Item) error {
	r, err := open(data, recordAttempt)
	if err != nil {
		return err
	}
	it.OrderID = r.varint()
	it.DetectedAt = r.time()
	r.attemptFields(it)
	return r.end()
}

// decodeV1 parses a schema-1 item record (an outbox or dead item with its
// whole event) into it.
func decodeV1(data []byte, it *Item) error {
	r, err := open(data, recordV1)
	if err != nil {
		return err
	}
	r.eventFields(&it.Event)
	it.OrderID = r.varint()
	it.DetectedAt = r.time()
	r.attemptFields(it)
	return r.end()
}

// The event's fields and the attempt bookkeeping are laid out the same way
// in every record version that holds them.

func appendEventFields(b []byte, ev *event.Event) []byte {
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
	return appendBool(b, ev.OrderMissing)
}

func (r *reader) eventFields(ev *event.Event) {
	ev.ID = r.str()
	ev.Type = event.Type(r.str())
	ev.Account = r.str()
	ev.Change.HistoryID = r.varint()
	ev.Change.Field = r.str()
	ev.Change.OldValue = r.str()
	ev.Change.NewValue = r.str()
	ev.Change.Source = r.str()
	ev.Change.CreatedAt = r.str()
	ev.Order = r.raw()
	ev.OrderMissing = r.bool()
}

func appendAttemptFields(b []byte, it *Item) []byte {
	b = binary.AppendVarint(b, int64(it.Attempts))
	b = appendTime(b, it.FirstAttempt)
	b = appendTime(b, it.NextAttempt)
	b = binary.AppendVarint(b, int64(it.LastStatus))
	b = appendString(b, it.LastError)
	b = appendTime(b, it.DeadAt)
	return appendString(b, it.DeadReason)
}

func (r *reader) attemptFields(it *Item) {
	it.Attempts = int(r.varint())
	it.FirstAttempt = r.time()
	it.NextAttempt = r.time()
	it.LastStatus = int(r.varint())
	it.LastError = r.str()
	it.DeadAt = r.time()
	it.DeadReason = r.str()
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
// return zero values, so decoders check once at the end.
type reader struct {
	b   []byte
	err error
}

// open starts reading a record of the given kind.
func open(data []byte, kind byte) (*reader, error) {
	if len(data) == 0 || data[0] != kind {
		return nil, fmt.Errorf("%w: not a record of kind %d", ErrCorrupt, kind)
	}
	return &reader{b: data[1:]}, nil
}

// end reports the first error, or trailing bytes.
func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return r.err
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

// raw returns a copy of a length-prefixed byte field, nil when empty.
func (r *reader) raw() json.RawMessage {
	if v := r.bytes(); len(v) > 0 {
		return append(json.RawMessage(nil), v...)
	}
	return nil
}

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

// dueAt is the time an item's due key sorts by: its next attempt, or its
// detection time when it was never attempted, so retries that are due and
// fresh events interleave by time.
func dueAt(it *Item) time.Time {
	if !it.NextAttempt.IsZero() {
		return it.NextAttempt
	}
	return it.DetectedAt
}

// dueKey is due/<webhook>'s key: due time in unix nanoseconds, then Seq.
// Times outside what int64 nanoseconds hold are clamped, so the key order
// stays the time order.
func dueKey(at time.Time, seq uint64) []byte {
	var ns uint64
	switch {
	case at.Before(time.Unix(0, 0)):
	case at.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	default:
		ns = uint64(at.UnixNano())
	}
	return binary.BigEndian.AppendUint64(u64(ns), seq)
}

// chainKey is chain/<webhook>'s key: order id, then Seq, so an order's
// pending items are adjacent and in detection order.
func chainKey(order int64, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(u64(uint64(order)), seq)
}

// splitKey splits a 16-byte due or chain key.
func splitKey(k []byte) (hi, seq uint64, err error) {
	if len(k) != 16 {
		return 0, 0, fmt.Errorf("%w: index key %x is not 16 bytes", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:]), nil
}
