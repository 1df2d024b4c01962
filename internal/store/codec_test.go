package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

func codecItems() []Item {
	full := Item{
		Event: event.Event{
			ID: "ghana-7044", Type: event.StatusChanged, Account: "ghana",
			Change: event.Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "approved",
				Source: "user", CreatedAt: "2018-10-03 11:28:38"},
			Order:        json.RawMessage(`{"id":1,"customer":{"firstName":"Ама"},"payments":{}}`),
			OrderMissing: true,
		},
		OrderID:      1,
		DetectedAt:   t0,
		Attempts:     12,
		FirstAttempt: t0.Add(time.Second),
		NextAttempt:  t0.Add(2 * time.Hour),
		LastStatus:   503,
		LastError:    strings.Repeat("x", 300),
		DeadAt:       time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC), // before the epoch
		DeadReason:   "max_age",
	}
	return []Item{
		{},
		full,
		{Event: event.Event{ID: "a-1", Change: event.Change{HistoryID: -1}}, OrderID: -5,
			DetectedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	}
}

// eventPart and attemptPart are the fields each record keeps.
func eventPart(it Item) Item {
	return Item{Event: it.Event, OrderID: it.OrderID, DetectedAt: it.DetectedAt}
}

func attemptPart(it Item) Item {
	it.Event = event.Event{}
	return it
}

func TestCodecRoundTrip(t *testing.T) {
	for i, in := range codecItems() {
		var ev, at, v1 Item
		if err := decodeEvent(encodeEvent(&in), &ev); err != nil {
			t.Fatalf("item %d event: %v", i, err)
		}
		if want := eventPart(in); !reflect.DeepEqual(ev, want) {
			t.Errorf("item %d event round trip:\n got %+v\nwant %+v", i, ev, want)
		}
		if err := decodeAttempt(encodeAttempt(&in), &at); err != nil {
			t.Fatalf("item %d attempt: %v", i, err)
		}
		if want := attemptPart(in); !reflect.DeepEqual(at, want) {
			t.Errorf("item %d attempt round trip:\n got %+v\nwant %+v", i, at, want)
		}
		if err := decodeV1(encodeV1(&in), &v1); err != nil {
			t.Fatalf("item %d v1: %v", i, err)
		}
		if !reflect.DeepEqual(v1, in) {
			t.Errorf("item %d v1 round trip:\n got %+v\nwant %+v", i, v1, in)
		}
	}
}

func TestCodecTimesDecodeInUTC(t *testing.T) {
	zone := time.FixedZone("GMT+3", 3*3600)
	in := Item{DetectedAt: t0.In(zone), NextAttempt: t0.In(zone)}
	var ev, at Item
	if err := decodeEvent(encodeEvent(&in), &ev); err != nil {
		t.Fatal(err)
	}
	if err := decodeAttempt(encodeAttempt(&in), &at); err != nil {
		t.Fatal(err)
	}
	for _, got := range []time.Time{ev.DetectedAt, at.DetectedAt, at.NextAttempt} {
		if !got.Equal(t0) || got.Location() != time.UTC {
			t.Errorf("time = %v, want %v in UTC", got, t0)
		}
	}
}

// decoders lists every record decoder with an encoder for valid input.
var decoders = []struct {
	name   string
	encode func(*Item) []byte
	decode func([]byte, *Item) error
}{
	{"event", encodeEvent, decodeEvent},
	{"attempt", encodeAttempt, decodeAttempt},
	{"v1", encodeV1, decodeV1},
}

func TestCodecRejectsCorruptRecords(t *testing.T) {
	for _, d := range decoders {
		good := d.encode(&codecItems()[1])
		tests := []struct {
			name string
			data []byte
		}{
			{"empty", nil},
			{"unknown format", append([]byte{9}, good[1:]...)},
			{"truncated", good[:len(good)/2]},
			{"trailing bytes", append(append([]byte(nil), good...), 0)},
			{"huge length", []byte{good[0], 0xff, 0xff, 0xff, 0xff, 0x0f}},
		}
		for _, tt := range tests {
			t.Run(d.name+"/"+tt.name, func(t *testing.T) {
				var it Item
				if err := d.decode(tt.data, &it); !errors.Is(err, ErrCorrupt) {
					t.Errorf("decode = %v, want ErrCorrupt", err)
				}
			})
		}
	}
	// A record of one kind is never read as another.
	for _, d := range decoders {
		for _, e := range decoders {
			if d.name == e.name {
				continue
			}
			var it Item
			if err := d.decode(e.encode(&codecItems()[1]), &it); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s decoder on a %s record = %v, want ErrCorrupt", d.name, e.name, err)
			}
		}
	}
}

// FuzzDecodeRecords: records come from a file that may be damaged; every
// decoder must fail cleanly with ErrCorrupt, and whatever decodes must
// survive a round trip.
func FuzzDecodeRecords(f *testing.F) {
	for _, it := range codecItems() {
		for _, d := range decoders {
			f.Add(d.encode(&it))
		}
	}
	for _, kind := range []byte{recordV1, recordEvent, recordAttempt} {
		f.Add([]byte{kind})
		f.Add([]byte{kind, 0xff, 0xff, 0xff, 0xff, 0x0f})
		f.Add([]byte{kind, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range decoders {
			var it Item
			if err := d.decode(data, &it); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: error %v is not ErrCorrupt", d.name, err)
				}
				continue
			}
			var again Item
			if err := d.decode(d.encode(&it), &again); err != nil {
				t.Fatalf("%s: re-encoded record does not decode: %v", d.name, err)
			}
			if !reflect.DeepEqual(again, it) {
				t.Fatalf("%s: round trip changed the item:\n got %+v\nwant %+v", d.name, again, it)
			}
		}
	})
}
