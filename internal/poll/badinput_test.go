package poll

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// script is an API that replays fixed history pages, keyed by sinceId,
// and answers every orders request with minimal orders.
type script struct {
	mu      sync.Mutex
	pages   map[int64]string // sinceId -> history page body
	history int              // history requests
}

func (s *script) set(since int64, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages[since] = body
}

func (s *script) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.history
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasSuffix(r.URL.Path, "/api/v5/orders/history"):
		since, _ := strconv.ParseInt(r.URL.Query().Get("filter[sinceId]"), 10, 64)
		s.mu.Lock()
		s.history++
		body, ok := s.pages[since]
		s.mu.Unlock()
		if !ok {
			body = page(0, 0)
		}
		_, _ = w.Write([]byte(body))
	case strings.HasSuffix(r.URL.Path, "/api/v5/orders"):
		var orders []string
		for _, v := range r.URL.Query()["filter[ids][]"] {
			orders = append(orders, fmt.Sprintf(`{"id": %s, "number": "%sA", "site": "main", "status": "approved", "customFields": []}`, v, v))
		}
		fmt.Fprintf(w, `{"success": true, "pagination": {"limit": 100, "totalCount": %d, "currentPage": 1, "totalPageCount": 1}, "orders": [%s]}`,
			len(orders), strings.Join(orders, ","))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"success": false, "errorMsg": "API method not found"}`))
	}
}

// page is a history page with the given pagination and entries.
func page(totalCount, totalPages int, entries ...string) string {
	return fmt.Sprintf(`{"success": true, "generatedAt": "2026-11-23 09:00:00", "history": [%s],
		"pagination": {"limit": 100, "totalCount": %d, "currentPage": 1, "totalPageCount": %d}}`,
		strings.Join(entries, ","), totalCount, totalPages)
}

func statusTo(id, order int64, status string) string {
	return fmt.Sprintf(`{"id": %d, "createdAt": "2026-11-23 08:00:00", "source": "user", "user": {"id": 1},
		"field": "status", "oldValue": {"code": "new"}, "newValue": {"code": %q},
		"order": {"id": %d, "managerId": 1, "site": "main", "status": %q}}`, id, status, order, status)
}

func comment(id, order int64) string {
	return fmt.Sprintf(`{"id": %d, "createdAt": "2026-11-23 08:00:00", "source": "user", "user": {"id": 1},
		"field": "manager_comment", "oldValue": null, "newValue": "call back",
		"order": {"id": %d, "managerId": 1, "site": "main", "status": "new"}}`, id, order)
}

// scripted is a poller against a script.
type scripted struct {
	*harness
	api *script
}

func newScripted(t *testing.T) *scripted {
	t.Helper()
	api := &script{pages: make(map[int64]string)}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	h := &harness{t: t, clock: newClock(), m: metrics.New()}
	h.cfg = testAccount(srv.URL + "/acme")
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h.st = st
	client, err := retailcrm.New(testClientOptions(h.cfg, h.m, -1))
	if err != nil {
		t.Fatal(err)
	}
	h.p = New(h.cfg, client, st, h.m, discard(), nil)
	h.p.now = h.clock.Now
	return &scripted{harness: h, api: api}
}

func (s *scripted) anomalies(kind string) int {
	return int(testutil.ToFloat64(s.m.HistoryAnomalies.WithLabelValues("acme", kind)))
}

// eventIDs returns the outbox's history ids in queue order.
func (s *scripted) eventIDs() []int64 {
	var out []int64
	for _, it := range s.outbox() {
		out = append(out, it.Event.Change.HistoryID)
	}
	return out
}

// settle polls across the look-back time so re-reads are exercised.
func (s *scripted) settle() {
	for range 3 {
		s.poll()
		s.clock.Advance(s.cfg.LookBackTime)
	}
	s.poll()
}

// pollIncomplete polls, expecting the read to stop early (ErrIncomplete).
func (s *scripted) pollIncomplete() {
	s.t.Helper()
	if err := s.p.Poll(context.Background()); !errors.Is(err, ErrIncomplete) {
		s.t.Fatalf("Poll = %v, want ErrIncomplete", err)
	}
}

func sameIDs(got []int64, want ...int64) bool {
	if len(got) != len(want) {
		return false
	}
	seen := make(map[int64]bool)
	for _, id := range got {
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			return false
		}
	}
	return len(seen) == len(want)
}

func TestBadInput(t *testing.T) {
	t.Run("ids backwards within a page", func(t *testing.T) {
		s := newScripted(t)
		s.api.set(0, page(3, 1, statusTo(10, 1, "approved"), statusTo(30, 3, "approved"), statusTo(20, 2, "approved")))
		s.api.set(20, page(1, 1, statusTo(30, 3, "approved")))
		s.settle()
		if got := s.eventIDs(); !sameIDs(got, 10, 20, 30) {
			t.Errorf("events %v, want 10, 20, 30 once each", got)
		}
		if n := s.anomalies(anomalyIDOrder); n != 1 {
			t.Errorf("id_order anomalies %d, want 1", n)
		}
		if c := s.state().Cursor; c != 30 {
			t.Errorf("cursor %d, want 30", c)
		}
	})
	t.Run("entries without order", func(t *testing.T) {
		s := newScripted(t)
		noOrder := `{"id": 6, "createdAt": "2026-11-23 08:00:00", "source": "user", "field": "status",
			"oldValue": {"code": "new"}, "newValue": {"code": "approved"}}`
		s.api.set(0, page(3, 1, statusTo(5, 1, "approved"), noOrder, statusTo(7, 2, "approved")))
		s.settle()
		if got := s.eventIDs(); !sameIDs(got, 5, 7) {
			t.Errorf("events %v, want 5 and 7", got)
		}
		if n := s.anomalies("no_order"); n != 1 { // counted once, not on every re-read
			t.Errorf("no_order anomalies %d, want 1", n)
		}
		if c := s.state().Cursor; c != 7 {
			t.Errorf("cursor %d, want 7", c)
		}
	})
	t.Run("unexpected value types", func(t *testing.T) {
		s := newScripted(t)
		numeric := strings.Replace(statusTo(5, 1, "approved"), `{"code": "approved"}`, `42`, 1)
		oddOld := strings.Replace(statusTo(6, 2, "approved"), `{"code": "new"}`, `[1, 2]`, 1)
		plain := strings.Replace(statusTo(7, 3, "approved"), `{"code": "approved"}`, `"approved"`, 1)
		objectless := strings.Replace(statusTo(8, 4, "approved"), `{"code": "approved"}`, `{"name": "Approved"}`, 1)
		s.api.set(0, page(4, 1, numeric, oddOld, plain, objectless))
		s.settle()
		if got := s.eventIDs(); !sameIDs(got, 6, 7) {
			t.Errorf("events %v, want 6 and 7", got)
		}
		if n := s.anomalies("status_value"); n != 2 {
			t.Errorf("status_value anomalies %d, want 2", n)
		}
		if n := s.anomalies("old_value"); n != 1 {
			t.Errorf("old_value anomalies %d, want 1", n)
		}
	})
	t.Run("empty page claiming more pages", func(t *testing.T) {
		s := newScripted(t)
		s.api.set(0, page(250, 3))
		s.pollIncomplete()
		if st := s.state(); st.Cursor != 0 || len(s.outbox()) != 0 {
			t.Fatalf("state %+v after an empty page", st)
		}
		if n := s.anomalies(anomalyEmptyPage); n != 1 {
			t.Errorf("empty_page anomalies %d, want 1", n)
		}
		s.api.set(0, page(1, 1, statusTo(5, 1, "approved")))
		s.poll()
		if got := s.eventIDs(); !sameIDs(got, 5) {
			t.Errorf("events %v, want 5", got)
		}
	})
	t.Run("empty page on a first start from now", func(t *testing.T) {
		s := newScripted(t)
		s.p.acct.StartFrom = "now"
		s.api.set(0, page(250, 3))
		if err := s.p.Poll(context.Background()); !errors.Is(err, ErrEmptyPage) {
			t.Fatalf("Poll = %v, want ErrEmptyPage", err)
		}
		if st := s.state(); st.Initialized {
			t.Fatalf("initialised on an inconsistent page: %+v", st)
		}
		s.api.set(0, page(2, 1, comment(7, 1), comment(9, 1)))
		s.poll()
		if st := s.state(); !st.Initialized || st.Cursor != 9 || len(s.outbox()) != 0 {
			t.Fatalf("state %+v, want initialised at 9 with nothing emitted", st)
		}
	})
	t.Run("empty page in the middle of a drain", func(t *testing.T) {
		s := newScripted(t)
		full := make([]string, 0, 100)
		for id := int64(1); id <= 100; id++ {
			full = append(full, comment(id, 1))
		}
		full[41] = statusTo(42, 1, "approved")
		s.api.set(0, page(250, 3, full...))
		s.api.set(100, page(150, 2))
		s.pollIncomplete()
		if got := s.eventIDs(); !sameIDs(got, 42) {
			t.Errorf("events %v, want 42", got)
		}
		if c := s.state().Cursor; c != 100 {
			t.Errorf("cursor %d, want 100: the empty page handled nothing", c)
		}
		if n := s.anomalies(anomalyEmptyPage); n != 1 {
			t.Errorf("empty_page anomalies %d, want 1", n)
		}
		s.api.set(100, page(1, 1, statusTo(101, 2, "approved")))
		s.clock.Advance(time.Hour)
		s.poll()
		if got := s.eventIDs(); !sameIDs(got, 42, 101) {
			t.Errorf("events %v, want 42 and 101", got)
		}
	})
	t.Run("page not past sinceId", func(t *testing.T) {
		s := newScripted(t)
		full := make([]string, 0, 100)
		for id := int64(1); id <= 100; id++ {
			full = append(full, comment(id, 1))
		}
		s.api.set(0, page(200, 2, full...))
		s.api.set(100, page(2, 1, statusTo(50, 1, "approved"), comment(60, 1)))
		s.pollIncomplete() // must return: no endless loop on the same sinceId
		if n := s.api.requests(); n != 2 {
			t.Errorf("%d history requests, want 2", n)
		}
		if got := s.eventIDs(); !sameIDs(got, 50) {
			t.Errorf("events %v, want 50", got)
		}
		if c := s.state().Cursor; c != 100 {
			t.Errorf("cursor %d, want 100", c)
		}
		if s.anomalies(anomalyNoProgress) != 1 || s.anomalies(anomalyIDOrder) != 2 {
			t.Errorf("no_progress %d, id_order %d anomalies, want 1 and 2", s.anomalies(anomalyNoProgress), s.anomalies(anomalyIDOrder))
		}
	})
	t.Run("entry without an id stops the page there", func(t *testing.T) {
		s := newScripted(t)
		noID := `{"field": "status", "newValue": {"code": "approved"}, "order": {"id": 9}}`
		s.api.set(0, page(4, 1, statusTo(5, 1, "approved"), statusTo(6, 2, "approved"), noID, statusTo(8, 3, "approved")))
		s.api.set(6, page(2, 1, noID, statusTo(8, 3, "approved")))
		for range 2 { // stuck: every poll stops at the same entry
			err := s.p.Poll(context.Background())
			if !errors.Is(err, ErrBadHistoryID) || !strings.Contains(err.Error(), "after history id 6") {
				t.Fatalf("Poll = %v, want ErrBadHistoryID naming where the account stops", err)
			}
			if got := s.eventIDs(); !sameIDs(got, 5, 6) {
				t.Errorf("events %v, want 5 and 6: the entries before it", got)
			}
			if c := s.state().Cursor; c != 6 {
				t.Errorf("cursor %d, want 6: never past the entry without an id", c)
			}
		}
		if n := s.anomalies("bad_id"); n != 2 {
			t.Errorf("bad_id anomalies %d, want one per poll", n)
		}
		// The API serves the entry properly again: the account moves on.
		s.api.set(6, page(2, 1, statusTo(7, 4, "cancel"), statusTo(8, 3, "approved")))
		s.poll()
		if got := s.eventIDs(); !sameIDs(got, 5, 6, 8) {
			t.Errorf("events %v, want 5, 6 and 8", got)
		}
	})
	t.Run("odd entries are passed over and counted", func(t *testing.T) {
		s := newScripted(t)
		with := func(entry, old, new string) string { return strings.Replace(entry, old, new, 1) }
		order := `"order": {"id": 2, "managerId": 1, "site": "main", "status": "approved"}`
		entries := []string{
			statusTo(5, 1, "approved"),
			with(statusTo(6, 2, "approved"), order, `"order": []`),
			with(statusTo(7, 2, "approved"), order, `"order": null`),
			with(statusTo(8, 2, "approved"), order, `"order": {"managerId": 1, "site": "main", "status": "approved"}`),
			with(statusTo(9, 2, "approved"), order, `"order": "2"`),
			// An item and a payment created inside an existing order.
			`{"id": 10, "createdAt": "2026-11-23 08:00:00", "created": true, "source": "user", "field": "order_product",
				"oldValue": null, "newValue": {"id": 55}, "item": {"id": 55, "offer": {"id": 3}},
				"order": {"id": 3, "site": "main", "status": "approved"}}`,
			`{"id": 11, "createdAt": "2026-11-23 08:00:00", "created": true, "source": "user", "field": "payments",
				"oldValue": null, "newValue": null, "payment": {"id": 77, "status": "paid"},
				"order": {"id": 3, "site": "main", "status": "approved"}}`,
			statusTo(12, 4, "approved"),
		}
		s.api.set(0, page(len(entries), 1, entries...))
		s.settle()
		if got := s.eventIDs(); !sameIDs(got, 5, 12) {
			t.Errorf("events %v, want 5 and 12 only", got)
		}
		if c := s.state().Cursor; c != 12 {
			t.Errorf("cursor %d, want 12: the account keeps moving", c)
		}
		for kind, want := range map[string]int{"order_not_object": 2, "no_order": 1, "bad_order_id": 1} {
			if n := s.anomalies(kind); n != want {
				t.Errorf("%s anomalies %d, want %d", kind, n, want)
			}
		}
	})
	t.Run("a second creation entry of one order", func(t *testing.T) {
		s := newScripted(t)
		creation := func(id int64) string {
			return fmt.Sprintf(`{"id": %d, "createdAt": "2026-11-23 08:00:00", "created": true, "source": "user",
				"field": "status", "oldValue": null, "newValue": {"code": "approved"},
				"order": {"id": 40, "site": "main", "status": "approved"}}`, id)
		}
		s.api.set(0, page(1, 1, creation(5)))
		s.settle()
		s.api.set(5, page(1, 1, creation(9)))
		s.settle()
		if got := s.eventIDs(); !sameIDs(got, 5) {
			t.Errorf("events %v, want one order.created (5)", got)
		}
		if n := s.anomalies(anomalyCreatedTwice); n != 1 {
			t.Errorf("created_twice anomalies %d, want 1", n)
		}
	})
}
