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

func TestCodecRoundTrip(t *testing.T) {
	for i, want := range codecItems() {
		var got Item
		if err := decodeItem(encodeItem(&want), &got); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("item %d round trip:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestCodecTimesDecodeInUTC(t *testing.T) {
	zone := time.FixedZone("GMT+3", 3*3600)
	in := Item{DetectedAt: t0.In(zone)}
	var got Item
	if err := decodeItem(encodeItem(&in), &got); err != nil {
		t.Fatal(err)
	}
	if !got.DetectedAt.Equal(in.DetectedAt) || got.DetectedAt.Location() != time.UTC {
		t.Errorf("DetectedAt = %v, want %v in UTC", got.DetectedAt, in.DetectedAt)
	}
}

func TestCodecRejectsCorruptRecords(t *testing.T) {
	good := encodeItem(&codecItems()[1])
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"unknown format", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)/2]},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"huge length", []byte{recordV1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var it Item
			if err := decodeItem(tt.data, &it); !errors.Is(err, ErrCorrupt) {
				t.Errorf("decodeItem = %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzDecodeItem: records come from a file that may be damaged; decoding
// must fail cleanly with ErrCorrupt, and whatever decodes must survive a
// round trip.
func FuzzDecodeItem(f *testing.F) {
	for _, it := range codecItems() {
		f.Add(encodeItem(&it))
	}
	f.Add([]byte{recordV1})
	f.Add([]byte{recordV1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{recordV1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var it Item
		if err := decodeItem(data, &it); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeItem error %v is not ErrCorrupt", err)
			}
			return
		}
		var again Item
		if err := decodeItem(encodeItem(&it), &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, it) {
			t.Fatalf("round trip changed the item:\n got %+v\nwant %+v", again, it)
		}
	})
}
