package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// young makes a scripted page's entries seconds old by the server's clock,
// so the stretches they are in need a look-back.
func young(body string) string {
	return strings.Replace(body, `"generatedAt": "2026-11-23 09:00:00"`, `"generatedAt": "2026-11-23 08:00:05"`, 1)
}

// A tick whose re-read of the look-back window stops early (an empty page
// with more announced, a page that does not move on) commits what it read
// but keeps the marks: a later tick re-reads the stretch and finds the
// entry that committed late.
func TestIncompleteTickKeepsMarks(t *testing.T) {
	for _, c := range []struct {
		name string
		stop string // the second page of the window's re-read
	}{
		{"empty page with more announced", page(250, 3)},
		{"page not past sinceId", page(2, 1, comment(50, 1), comment(60, 1))},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newScripted(t)
			// Ids 1 to 101 but 42, which commits late.
			var first []string
			for id := int64(1); len(first) < 100; id++ {
				if id != 42 {
					first = append(first, comment(id, 1))
				}
			}
			s.api.set(0, young(page(101, 2, first...)))
			s.api.set(101, young(page(1, 1, comment(102, 1))))
			s.poll()
			if marks := s.state().Marks; len(marks) != 1 || marks[0].Cursor != 0 || s.state().Cursor != 102 {
				t.Fatalf("state %+v, want cursor 102 and one mark from 0", s.state())
			}
			s.clock.Advance(s.cfg.LookBackTime + time.Second)
			s.api.set(101, young(c.stop))
			if err := s.p.Poll(context.Background()); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("Poll = %v, want ErrIncomplete", err)
			}
			if marks := s.state().Marks; len(marks) != 1 {
				t.Fatalf("marks %+v: retired by a tick that did not re-read their stretch", marks)
			}
			// Entry 42 shows; the next full pass re-reads the stretch.
			all := append(first[:41:41], statusTo(42, 2, "approved"))
			all = append(all, first[41:99]...)
			s.api.set(0, young(page(102, 2, all...)))
			s.api.set(100, young(page(2, 1, comment(101, 1), comment(102, 1))))
			s.poll()
			if got := s.eventIDs(); !sameIDs(got, 42) {
				t.Errorf("events %v, want the late entry 42", got)
			}
		})
	}
}

// A replay whose read stops early fails and says how far it got; what it
// read before is handed on.
func TestReplayStopsEarly(t *testing.T) {
	s := newScripted(t)
	full := make([]string, 0, 100)
	for id := int64(1); id <= 100; id++ {
		full = append(full, comment(id, 1))
	}
	full[41] = statusTo(42, 7, "approved")
	s.api.set(0, page(250, 3, full...))
	s.api.set(100, page(150, 2))
	var got []int64
	from := s.clock.Now().Add(-time.Hour)
	res, err := s.p.Replay(context.Background(), from, s.clock.Now(), func(evs []store.NewEvent) error {
		for _, ne := range evs {
			got = append(got, ne.Event.Change.HistoryID)
		}
		return nil
	})
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "after history id 100, created 2026-11-23 08:00:00") {
		t.Fatalf("Replay = %v, want ErrIncomplete naming history id 100", err)
	}
	if res.LastID != 100 || res.Entries != 100 || !sameIDs(got, 42) {
		t.Errorf("result %+v, emitted %v; want up to 100, and 42 emitted", res, got)
	}
}
