package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/tmpl"
)

// testOrder is an order as GET /api/v5/orders returns it, with the kinds
// of values templates must print exactly (big ids, decimals, unicode).
const testOrder = `{"id":9007199254740993,"number":"A-17","totalSumm":1500.50,` +
	`"customer":{"firstName":"Иван","email":"ivan@example.com"},"items":[{"offer":{"name":"Чай"}}],` +
	`"customFields":{"my_field":"x&y=z"}}`

func testEvent(account string, historyID, orderID int64) event.Event {
	order := testOrder
	if orderID != 0 {
		order = `{"id":` + strconv.FormatInt(orderID, 10) + `,"status":"approved"}`
	}
	return event.Event{
		ID:      event.ID(account, historyID),
		Type:    event.StatusChanged,
		Account: account,
		Change: event.Change{HistoryID: historyID, Field: "status", OldValue: "new", NewValue: "approved",
			Source: "user", CreatedAt: "2026-11-23 10:00:00"},
		Order: json.RawMessage(order),
	}
}

func params(t testing.TB, kv ...string) []config.Param {
	t.Helper()
	var ps []config.Param
	for i := 0; i < len(kv); i += 2 {
		v, err := tmpl.Parse(kv[i+1])
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, config.Param{Name: kv[i], Value: v})
	}
	return ps
}

func mustTmpl(t testing.TB, src string) *tmpl.Template {
	t.Helper()
	tp, err := tmpl.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// The params every format test sends, and what they must decode to.
var (
	paramSrc = []string{
		"order_id", "{{ order.id }}",
		"name", "{{ order.customer.firstName }}",
		"sum", "{{ order.totalSumm }}",
		"old", "{{ change.oldValue }}",
		"acct", "{{ account }}",
		"event", "{{ event.id }}",
		"missing", "{{ order.nope.deeper }}",
		"field", "{{ order.customFields['my_field'] }}",
		"customer", "{{ order.customer|json_encode }}",
	}
	paramWant = map[string]string{
		"order_id": "9007199254740993",
		"name":     "Иван",
		"sum":      "1500.50",
		"old":      "new",
		"acct":     "ghana",
		"event":    "ghana-7044",
		"missing":  "",
		"field":    "x&y=z",
		"customer": `{"email":"ivan@example.com","firstName":"Иван"}`,
	}
)

func TestRender(t *testing.T) {
	ev := testEvent("ghana", 7044, 0)
	ps := params(t, paramSrc...)
	tests := []struct {
		name      string
		wh        config.Webhook
		method    string
		ctype     string
		decode    func(t *testing.T, r Request) map[string]string
		wantQuery string // the URL's own query that must survive
	}{
		{"json params", config.Webhook{Format: FormatJSON, Params: ps, URL: "http://x/h"}, "POST", contentJSON,
			func(t *testing.T, r Request) map[string]string {
				var m map[string]string
				if err := json.Unmarshal(r.Body, &m); err != nil {
					t.Fatal(err)
				}
				return m
			}, ""},
		{"form", config.Webhook{Format: FormatForm, Params: ps, URL: "http://x/h"}, "POST", contentForm,
			func(t *testing.T, r Request) map[string]string { return parseQuery(t, string(r.Body)) }, ""},
		{"form GET goes to the query", config.Webhook{Method: "GET", Format: FormatForm, Params: ps, URL: "http://x/h"}, "GET", "",
			func(t *testing.T, r Request) map[string]string { return urlParams(t, r) }, ""},
		{"query POST", config.Webhook{Method: "POST", Format: FormatQuery, Params: ps, URL: "http://x/h?token=abc"}, "POST", "",
			func(t *testing.T, r Request) map[string]string { return urlParams(t, r) }, "token=abc"},
		{"query GET", config.Webhook{Method: "GET", Format: FormatQuery, Params: ps, URL: "http://x/h"}, "GET", "",
			func(t *testing.T, r Request) map[string]string { return urlParams(t, r) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Render(tc.wh, ev)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != tc.method || r.ContentType != tc.ctype {
				t.Errorf("method %s content type %q, want %s %q", r.Method, r.ContentType, tc.method, tc.ctype)
			}
			if tc.ctype == "" && len(r.Body) != 0 {
				t.Errorf("body %q, want none", r.Body)
			}
			got := tc.decode(t, r)
			if tc.wantQuery != "" {
				if got["token"] != "abc" {
					t.Errorf("the URL's own query was lost: %s", r.URL)
				}
				delete(got, "token")
			}
			if !reflect.DeepEqual(got, paramWant) {
				t.Errorf("params:\n got %v\nwant %v", got, paramWant)
			}
		})
	}
}

func parseQuery(t *testing.T, s string) map[string]string {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for k, vs := range v {
		if len(vs) != 1 {
			t.Errorf("param %s sent %d times", k, len(vs))
		}
		m[k] = vs[0]
	}
	return m
}

func urlParams(t *testing.T, r Request) map[string]string {
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	return parseQuery(t, u.RawQuery)
}

// Params go out in config order, as a trigger lists them.
func TestRenderKeepsParamOrder(t *testing.T) {
	ev := testEvent("ghana", 7044, 0)
	ps := params(t, "z", "1", "a", "2", "m", "3")
	r, _ := Render(config.Webhook{Format: FormatForm, Params: ps}, ev)
	if string(r.Body) != "z=1&a=2&m=3" {
		t.Errorf("form body %q", r.Body)
	}
	r, _ = Render(config.Webhook{Format: FormatJSON, Params: ps}, ev)
	if string(r.Body) != `{"z":"1","a":"2","m":"3"}` {
		t.Errorf("json body %s", r.Body)
	}
}

// The default body is the event envelope (docs/REFERENCE.md, "The event"), the order byte for byte.
func TestRenderEnvelope(t *testing.T) {
	ev := testEvent("ghana", 7044, 0)
	r, err := Render(config.Webhook{URL: "http://x/h"}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "POST" || r.ContentType != contentJSON {
		t.Errorf("%s %q", r.Method, r.ContentType)
	}
	var env struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Account string          `json:"account"`
		Change  map[string]any  `json:"change"`
		Order   json.RawMessage `json:"order"`
	}
	d := json.NewDecoder(bytes.NewReader(r.Body))
	d.DisallowUnknownFields()
	if err := d.Decode(&env); err != nil {
		t.Fatal(err)
	}
	if env.ID != "ghana-7044" || env.Type != "order.status_changed" || env.Account != "ghana" {
		t.Errorf("envelope %+v", env)
	}
	wantChange := map[string]any{"historyId": 7044.0, "field": "status", "oldValue": "new", "newValue": "approved",
		"source": "user", "createdAt": "2026-11-23 10:00:00"}
	if !reflect.DeepEqual(env.Change, wantChange) {
		t.Errorf("change %v", env.Change)
	}
	if string(env.Order) != testOrder {
		t.Errorf("order changed on the way:\n%s", env.Order)
	}
}

func TestRenderTemplate(t *testing.T) {
	ev := testEvent("ghana", 7044, 0)
	tests := []struct{ body, want, ctype string }{
		{`{"id": {{ order.id }}, "name": {{ order.customer.firstName|json_encode }}}`,
			`{"id": 9007199254740993, "name": "Иван"}`, contentJSON},
		{`order {{ order.number }} is {{ change.newValue }}`, `order A-17 is approved`, contentText},
	}
	for _, tc := range tests {
		r, err := Render(config.Webhook{Format: FormatTemplate, Body: mustTmpl(t, tc.body)}, ev)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Body) != tc.want || r.ContentType != tc.ctype {
			t.Errorf("%q: got %q (%s), want %q (%s)", tc.body, r.Body, r.ContentType, tc.want, tc.ctype)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	ev := testEvent("ghana", 1, 0)
	if _, err := Render(config.Webhook{Format: "xml"}, ev); err == nil {
		t.Error("unknown format accepted")
	}
	ev.Order = json.RawMessage(`{"id":`)
	if _, err := Render(config.Webhook{Format: FormatForm, Params: params(t, "a", "{{ order.id }}")}, ev); err == nil {
		t.Error("a broken order rendered")
	}
}

// The spec's published test vector (standard-webhooks libraries, every language).
func TestSignVector(t *testing.T) {
	key, err := Key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	if _, err := Key("whsec_not base64!"); !errors.Is(err, ErrBadSecret) {
		t.Errorf("bad secret: %v", err)
	}
}

// capture is a receiver that records requests and answers with fn.
type capture struct {
	reqs []*http.Request
	body [][]byte
}

const (
	secretOld = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretNew = "whsec_dGhlIG5ldyBzZWNyZXQgYWZ0ZXIgcm90YXRpb24="
)

// A receiver using the official library verifies the signature with
// either secret during rotation, and sees the contract headers.
func TestSendVerifiedByOfficialLibrary(t *testing.T) {
	var got atomic.Pointer[capture]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(&capture{reqs: []*http.Request{r}, body: [][]byte{b}})
	}))
	defer srv.Close()
	for _, format := range []string{FormatJSON, FormatForm, FormatQuery} {
		t.Run(format, func(t *testing.T) {
			wh := config.Webhook{Name: "1", URL: srv.URL, Format: format, Timeout: 5 * time.Second,
				Secrets: []config.Secret{secretOld, secretNew}, Headers: map[string]string{"X-Shop": "gh"}}
			if format != FormatJSON {
				wh.Params = params(t, paramSrc...)
			}
			now := time.Now()
			ev := testEvent("ghana", 7044, 0)
			if _, err := Send(t.Context(), nil, wh, ev, "retailcrm-poller/test", now); err != nil {
				t.Fatal(err)
			}
			c := got.Load()
			r, body := c.reqs[0], c.body[0]
			for _, s := range []string{secretOld, secretNew} {
				v, err := standardwebhooks.NewWebhook(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Verify(body, r.Header); err != nil {
					t.Errorf("official library rejects the signature for one secret: %v", err)
				}
			}
			bad, _ := standardwebhooks.NewWebhook("whsec_" + "d3Jvbmcgc2VjcmV0IGtleSAxMjM0NTY3OA==")
			if bad.Verify(body, r.Header) == nil {
				t.Error("a wrong secret verifies")
			}
			h := r.Header
			if h.Get("webhook-id") != "ghana-7044" || h.Get("webhook-timestamp") != strconv.FormatInt(now.Unix(), 10) ||
				h.Get("User-Agent") != "retailcrm-poller/test" || h.Get("X-Shop") != "gh" {
				t.Errorf("headers %v", h)
			}
			if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
				t.Errorf("%d signatures, want one per secret", n)
			}
		})
	}
}

func TestSendOutcomes(t *testing.T) {
	var redirected atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/target", func(http.ResponseWriter, *http.Request) { redirected.Add(1) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		if ra := r.URL.Query().Get("ra"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, r.URL.Query().Get("body"))
	})
	stop := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("x"), 1<<20))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(stop) // before Close, which waits for handlers
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		path        string
		successBody string
		timeout     time.Duration
		wantErr     error // nil: success
		wantStatus  int
		wantRA      time.Duration
	}{
		{"200", "/status/200", "", 0, nil, 200, 0},
		{"204", "/status/204", "", 0, nil, 204, 0},
		{"500", "/status/500", "", 0, ErrStatus, 500, 0},
		{"410", "/status/410", "", 0, ErrStatus, 410, 0},
		{"redirect not followed", "/redirect", "", 0, ErrStatus, 307, 0},
		{"success body matches trimmed", "/status/200?body=%20OK%0A", "OK", 0, nil, 200, 0},
		{"success body mismatch", "/status/200?body=FAIL", "OK", 0, ErrSuccessBody, 200, 0},
		{"success body on a 500", "/status/500?body=OK", "OK", 0, ErrStatus, 500, 0},
		{"retry-after seconds", "/status/503?ra=120", "", 0, ErrStatus, 503, 2 * time.Minute},
		{"retry-after date", "/status/429?ra=" + url.QueryEscape(now.Add(90*time.Second).Format(http.TimeFormat)), "", 0, ErrStatus, 429, 90 * time.Second},
		{"retry-after junk", "/status/503?ra=soon", "", 0, ErrStatus, 503, 0},
		{"timeout", "/slow", "", 100 * time.Millisecond, context.DeadlineExceeded, 0, 0},
		{"huge body", "/huge", "", 0, nil, 200, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wh := config.Webhook{Name: "1", URL: srv.URL + tc.path, SuccessBody: tc.successBody, Timeout: tc.timeout}
			res, err := Send(t.Context(), http.DefaultClient, wh, testEvent("ghana", 1, 0), "ua", now)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if res.Status != tc.wantStatus || res.RetryAfter != tc.wantRA {
				t.Errorf("status %d retry-after %v, want %d %v", res.Status, res.RetryAfter, tc.wantStatus, tc.wantRA)
			}
			if err != nil && strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error names the URL, which may carry a token: %v", err)
			}
			if len(res.Body) > maxSnippet {
				t.Errorf("result keeps %d bytes of body", len(res.Body))
			}
		})
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("redirect followed %d times", n)
	}
}

// Orders come from the CRM: whatever they hold, rendering never panics and
// the envelope and JSON params stay valid JSON.
func FuzzRender(f *testing.F) {
	f.Add([]byte(testOrder))
	f.Add([]byte(`{"id":1,"customFields":[]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"id":"<script>&</script>"}`))
	ps := params(f, paramSrc...)
	f.Fuzz(func(t *testing.T, order []byte) {
		ev := testEvent("ghana", 1, 0)
		ev.Order = order
		for _, wh := range []config.Webhook{{}, {Format: FormatJSON, Params: ps}, {Format: FormatForm, Params: ps}} {
			r, err := Render(wh, ev)
			if len(order) == 0 {
				continue // no order: params render it empty, the envelope fails
			}
			if !json.Valid(order) {
				if err == nil && len(wh.Params) > 0 {
					t.Fatalf("invalid order %q rendered", order)
				}
				continue
			}
			if err != nil {
				t.Fatalf("valid order %q: %v", order, err)
			}
			if r.ContentType == contentJSON && !json.Valid(r.Body) {
				t.Fatalf("invalid JSON body %q", r.Body)
			}
			if r.ContentType == contentForm {
				q, err := url.ParseQuery(string(r.Body))
				if err != nil || len(q) != len(ps) {
					t.Fatalf("form body %q: %d keys, %v", r.Body, len(q), err)
				}
			}
			if again, _ := Render(wh, ev); !bytes.Equal(again.Body, r.Body) {
				t.Fatalf("rendering not deterministic:\n%s\n%s", r.Body, again.Body)
			}
		}
	})
}
