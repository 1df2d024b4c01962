package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// fault is what the faulty receiver does with one request instead of
// answering 200.
type fault int

const (
	noFault     fault = iota
	fail500           // answer 500
	fail503           // answer 503 with Retry-After: 1
	fail410           // answer 410 Gone: the poller dead-letters at once
	hang              // wait hangFor (or until the client gives up), then answer 200
	reset             // hijack the connection and close it without an answer
	slowBody          // answer 200, dribbling the body out over hangFor
	fail503Year       // answer 503 with Retry-After: 31536000 (a year)
)

// faultyReceiver is the receiver with faults injected in front of it.
type faultyReceiver struct {
	*receiver.Receiver

	mu       sync.Mutex
	pick     func(r *http.Request, attempt int) fault
	hangFor  time.Duration
	attempts map[[2]string]int // path, webhook-id -> requests
}

func newFaultyReceiver() *faultyReceiver {
	return &faultyReceiver{Receiver: receiver.New(), attempts: map[[2]string]int{}}
}

// SetFault makes pick choose a fault for each request before it is read
// (nil: none); attempt counts the requests with this path and webhook-id,
// from 1. hang and slowBody take hangFor (0: 30s). Safe while serving.
func (f *faultyReceiver) SetFault(pick func(r *http.Request, attempt int) fault, hangFor time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pick, f.hangFor = pick, hangFor
}

// Attempts returns how many requests (accepted or not) path got for id.
func (f *faultyReceiver) Attempts(path, id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[[2]string{path, id}]
}

func (f *faultyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	k := [2]string{r.URL.Path, r.Header.Get("webhook-id")}
	f.attempts[k]++
	attempt, pick, wait := f.attempts[k], f.pick, f.hangFor
	f.mu.Unlock()
	fl := noFault
	if pick != nil {
		fl = pick(r, attempt)
	}
	if wait <= 0 {
		wait = 30 * time.Second
	}
	switch fl {
	case fail500:
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	case fail503:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "injected overload", http.StatusServiceUnavailable)
		return
	case fail503Year:
		w.Header().Set("Retry-After", "31536000")
		http.Error(w, "injected overload, come back next year", http.StatusServiceUnavailable)
		return
	case fail410:
		http.Error(w, "gone", http.StatusGone)
		return
	case reset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	case hang:
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
	case slowBody:
		w = &slowWriter{ResponseWriter: w, r: r, every: wait / 2}
	}
	f.Receiver.ServeHTTP(w, r)
}

// slowWriter writes the answer's body one byte every `every`, flushing
// each, and stops when the client leaves.
type slowWriter struct {
	http.ResponseWriter
	r     *http.Request
	every time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) {
	fl, _ := s.ResponseWriter.(http.Flusher)
	for i := range p {
		if _, err := s.ResponseWriter.Write(p[i : i+1]); err != nil {
			return i, err
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-time.After(s.every):
		case <-s.r.Context().Done():
			return i + 1, s.r.Context().Err()
		}
	}
	return len(p), nil
}

// TestFaultyReceiver checks every fault mode of the test receiver.
func TestFaultyReceiver(t *testing.T) {
	secret := receiver.NewSecret()
	rc := newFaultyReceiver()
	if err := rc.Secure("/s", secret); err != nil {
		t.Fatal(err)
	}
	faults := map[string]fault{}
	rc.SetFault(func(r *http.Request, attempt int) fault {
		if attempt > 1 {
			return noFault
		}
		return faults[r.Header.Get("webhook-id")]
	}, 200*time.Millisecond)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	send := func(id string, sign bool, timeout time.Duration) (int, error) {
		req := testkit.SignedRequest(t, srv.URL+"/s", secret, id, sign)
		c := &http.Client{Timeout: timeout}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return resp.StatusCode, err
	}
	tests := []struct {
		id      string
		fault   fault
		sign    bool
		timeout time.Duration
		code    int
		fails   bool
	}{
		{"ok", noFault, true, time.Second, 200, false},
		{"badsig", noFault, false, time.Second, 200, false},
		{"f500", fail500, true, time.Second, 500, false},
		{"f503", fail503, true, time.Second, 503, false},
		{"gone", fail410, true, time.Second, 410, false},
		{"reset", reset, true, time.Second, 0, true},
		{"hang-timeout", hang, true, 50 * time.Millisecond, 0, true},
		{"hang-ok", hang, true, time.Second, 200, false},
		{"slow", slowBody, true, time.Second, 200, false},
	}
	for _, tt := range tests { // filled before any request: the handler reads it
		faults[tt.id] = tt.fault
	}
	for _, tt := range tests {
		code, err := send(tt.id, tt.sign, tt.timeout)
		if (err != nil) != tt.fails || code != tt.code {
			t.Errorf("%s: code %d err %v, want code %d, error %v", tt.id, code, err, tt.code, tt.fails)
		}
	}
	counts := rc.Counts("/s")
	for _, id := range []string{"ok", "badsig", "hang-ok", "slow"} {
		if counts[id] != 1 {
			t.Errorf("%s accepted %d times, want 1", id, counts[id])
		}
	}
	for _, id := range []string{"f500", "f503", "gone", "reset"} {
		if counts[id] != 0 || rc.Attempts("/s", id) != 1 {
			t.Errorf("%s: accepted %d, attempts %d; want 0 and 1", id, counts[id], rc.Attempts("/s", id))
		}
	}
	for _, d := range rc.Deliveries() {
		if want := d.ID != "badsig"; d.SignatureOK != want {
			t.Errorf("%s: SignatureOK = %v (%s), want %v", d.ID, d.SignatureOK, d.SignatureErr, want)
		}
	}
}
