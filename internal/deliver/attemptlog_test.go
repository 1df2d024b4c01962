package deliver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// TestAttemptLogRecorded: every attempt's outcome reaches the event's
// attempt log: status, latency, the start of the answer, the error without
// the credentials or token of the URL.
func TestAttemptLogRecorded(t *testing.T) {
	busy := strings.Repeat("busy ", 200)
	rcv := newReceiver(t, func(_ string, attempt int) (int, string, http.Header) {
		if attempt < 3 {
			return http.StatusServiceUnavailable, busy, nil
		}
		return http.StatusOK, "ok", nil
	})
	gone := httptest.NewServer(http.NotFoundHandler())
	down := strings.Replace(gone.URL, "http://", "http://user:hunter2@", 1) + "/hook?token=s3cr3t"
	gone.Close()

	st := openStore(t, "")
	ids := enqueue(t, st, "ghana", []string{"app", "down"}, 1, 1, 1)
	app, dead := webhook(rcv.srv.URL), webhook(down)
	app.Name, dead.Name = "app", "down"
	dead.Retry.MaxAttempts = 3
	startDispatcher(t, st, Options{}, account("ghana", app, dead))
	eventually(t, "the delivery marked and the dead letter", func() bool {
		ds, err := st.Dead("ghana")
		ps, perr := st.Pending("ghana", "app", 0, 0)
		return err == nil && perr == nil && len(ds) == 1 && len(ps) == 0
	})

	log, err := st.Event("", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Attempt
	statuses := map[string][]int{}
	for _, a := range log.Attempts {
		got = append(got, a)
		statuses[a.Webhook] = append(statuses[a.Webhook], a.Status)
		if a.At.IsZero() || a.Latency <= 0 {
			t.Errorf("attempt %+v: no time or latency", a)
		}
		switch {
		case a.Webhook == "down" && (a.Error == "" || strings.Contains(a.Error, "hunter2") || strings.Contains(a.Error, "s3cr3t")):
			t.Errorf("down's attempt error %q: want the cause, without the URL's secrets", a.Error)
		case a.Status == http.StatusServiceUnavailable && (len(a.Response) != store.MaxAttemptText || !strings.HasPrefix(busy, a.Response) || a.Error == ""):
			t.Errorf("503 attempt %+v: want the first %d bytes of the answer and the error", a, store.MaxAttemptText)
		case a.Status == http.StatusOK && (a.Response != "ok" || a.Error != ""):
			t.Errorf("success %+v", a)
		}
	}
	if s := statuses["app"]; len(s) != 3 || s[0] != 503 || s[1] != 503 || s[2] != 200 {
		t.Errorf("app's attempts %v, want 503 503 200", s)
	}
	if s := statuses["down"]; len(s) != 3 || s[0] != 0 || s[2] != 0 {
		t.Errorf("down's attempts %v, want three without a response", s)
	}
	for w, n := range map[string]int{"app": 0, "down": 0} {
		for _, a := range got {
			if a.Webhook == w {
				n++
				if a.Number != n {
					t.Errorf("%s's attempt %d numbered %d", w, n, a.Number)
				}
			}
		}
	}
	if len(log.Queues) != 1 || log.Queues[0].Webhook != "down" || log.Queues[0].State != "dead" {
		t.Errorf("queues %+v", log.Queues)
	}
}
