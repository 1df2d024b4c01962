package admin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// FuzzDLQRequest: whatever a client sends to the mutating endpoints, the
// server answers 200, 400, 404 or 409 (a removed webhook's dead letter)
// and keeps serving.
func FuzzDLQRequest(f *testing.F) {
	for _, seed := range []string{
		`{"account":"ghana","ids":["ghana-10"]}`,
		`{"account":"","ids":[]}`,
		`{"account":"ghana","ids":["ghana-99"]}`,
		`{"ids":null}`, `[]`, `{`, ``, `{"account":7}`,
	} {
		f.Add("retry", seed)
		f.Add("drop", seed)
	}
	fx := newFixture(f)
	st, err := store.Open(fx.path, store.Options{Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	h := NewServer(st, fx.cfg, Hooks{Changed: func(string) {}}, slog.New(slog.DiscardHandler)).Handler()
	f.Fuzz(func(t *testing.T, op, body string) {
		if op != "retry" {
			op = "drop"
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/dlq/"+op, strings.NewReader(body)))
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict:
		default:
			t.Fatalf("POST /dlq/%s %q: %d %s", op, body, rec.Code, rec.Body)
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("answer is not JSON: %q", rec.Header().Get("Content-Type"))
		}
	})
}
