package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// hostileNames try to break out of a JSON string, break the JSON, or pass
// for JSON themselves.
var hostileNames = []string{
	`x", "admin": true, "y": "`,
	`back\slash\`,
	"new\nline\r\n",
	"tab\there",
	"</script><script>alert(1)</script>",
	"smile \U0001F600 clef \U0001D11E",
	"line\u2028para\u2029end",
	"nul\x00 esc\x1b",
	`{"admin": true}`,
	`"quoted"`,
	"{{ order.id }}",
	"",
}

// safeBody is the template: one value between quotes, one number.
const safeBody = `{"note": "{{ order.customer.lastName }}", "id": {{ order.id }}}`

// eventWithOrder is testEvent carrying order (any JSON value) instead.
func eventWithOrder(t testing.TB, order any) event.Event {
	t.Helper()
	raw, err := json.Marshal(order)
	if err != nil {
		t.Fatal(err)
	}
	ev := testEvent("ghana", 7044, 0)
	ev.Order = raw
	return ev
}

func hostileOrder(name string) map[string]any {
	return map[string]any{"id": 4242, "customer": map[string]any{"lastName": name}}
}

// checkSafeBody decodes a rendered safeBody: exactly note and id, with the
// values the order held.
func checkSafeBody(t *testing.T, body []byte, wantNote string, wantID string) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var got map[string]any
	if err := d.Decode(&got); err != nil {
		t.Fatalf("invalid JSON %q: %v", body, err)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("data after the object in %q", body)
	}
	if len(got) != 2 || got["note"] != wantNote || got["id"] != json.Number(wantID) {
		t.Fatalf("decoded %#v, want only note %q and id %s", got, wantNote, wantID)
	}
}

func TestRenderTemplateHostileNames(t *testing.T) {
	wh := config.Webhook{Format: FormatTemplate, Body: mustTmpl(t, safeBody)}
	for _, name := range hostileNames {
		t.Run(name, func(t *testing.T) {
			r, err := Render(wh, eventWithOrder(t, hostileOrder(name)))
			if err != nil {
				t.Fatal(err)
			}
			if r.ContentType != contentJSON {
				t.Errorf("content type %q, want %q", r.ContentType, contentJSON)
			}
			checkSafeBody(t, r.Body, name, "4242")
		})
	}
}

// The Content-Type, and so the escaping, comes from the config alone.
func TestTemplateContentType(t *testing.T) {
	ev := eventWithOrder(t, hostileOrder(`{"a": "b\"}`))
	tests := []struct {
		name     string
		body     string
		headers  config.Headers
		ctype    string
		wantBody string
	}{
		{"object literal", `{"n": "{{ order.customer.lastName }}"}`, nil, contentJSON,
			`{"n": "{\"a\": \"b\\\"}"}`},
		{"array literal after spaces", "\n  [{{ order.id }}, \"{{ order.customer.lastName }}\"]", nil, contentJSON,
			"\n  [4242, \"{\\\"a\\\": \\\"b\\\\\\\"}\"]"},
		{"first tag json_encode", `{{ order.customer|json_encode }}`, nil, contentJSON,
			`{"lastName":"{\"a\": \"b\\\"}"}`},
		// A value that is JSON itself does not make the body JSON.
		{"text starting with a tag", `{{ order.customer.lastName }}`, nil, contentText, `{"a": "b\"}`},
		{"text", `Order {{ order.id }}: {{ order.customer.lastName }}`, nil, contentText, `Order 4242: {"a": "b\"}`},
		{"configured JSON type wins over text", `{{ order.customer.lastName }}`,
			config.Headers{"content-type": "application/vnd.api+json; charset=utf-8"}, "application/vnd.api+json; charset=utf-8",
			`{\"a\": \"b\\\"}`},
		{"configured text type wins over a JSON look", `{"n": "{{ order.customer.lastName }}"}`,
			config.Headers{"Content-Type": "text/plain"}, "text/plain", `{"n": "{"a": "b\"}"}`},
		{"no body", "", nil, contentText, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wh := config.Webhook{Format: FormatTemplate, Headers: tc.headers}
			if tc.body != "" {
				wh.Body = mustTmpl(t, tc.body)
			}
			r, err := Render(wh, ev)
			if err != nil {
				t.Fatal(err)
			}
			if r.ContentType != tc.ctype || string(r.Body) != tc.wantBody {
				t.Errorf("got %q %s, want %q %s", r.ContentType, r.Body, tc.ctype, tc.wantBody)
			}
		})
	}
}

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"Application/JSON; charset=utf-8":   true,
		" application/json ":                true,
		"application/vnd.api+json":          true,
		"application/cloudevents+json":      true,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"application/jsonx":                 false,
		"+json":                             false,
		"":                                  false,
		"text/json-seq":                     false,
	} {
		if got := isJSONContentType(ct); got != want {
			t.Errorf("isJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

// Over real HTTP: what the receiver gets verifies with the official
// library and decodes to the hostile name, with the JSON Content-Type.
func TestSendTemplateHostileName(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	verifier, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		body  []byte
		ctype string
		err   error
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = verifier.Verify(b, r.Header)
		}
		ch <- got{b, r.Header.Get("Content-Type"), err}
	}))
	t.Cleanup(srv.Close)
	name := `x", "admin": true, "y": "` + "\n\u2028\\"
	wh := config.Webhook{Name: "chat", URL: srv.URL, Format: FormatTemplate, Body: mustTmpl(t, safeBody),
		Secrets: []config.Secret{config.Secret(secret)}, Timeout: 5 * time.Second}
	if _, err := Send(context.Background(), nil, wh, eventWithOrder(t, hostileOrder(name)), "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	g := <-ch
	if g.err != nil {
		t.Fatalf("receiver: %v", g.err)
	}
	if g.ctype != contentJSON {
		t.Errorf("Content-Type %q", g.ctype)
	}
	checkSafeBody(t, g.body, name, "4242")
}

// FuzzTemplateJSON: whatever the order holds, the template renders
// valid JSON whose note is the last name exactly (invalid UTF-8 arrives as
// U+FFFD, as the order's own JSON decoding gives it) and whose id is the
// order id; a body of quoted tags over every kind of value stays valid JSON.
func FuzzTemplateJSON(f *testing.F) {
	for _, name := range hostileNames {
		f.Add(name, int64(4242), []byte(testOrder))
	}
	f.Add("\xff\xfe", int64(-1), []byte(`{"customer": [], "items": null}`))
	f.Add("\xed\xa0\x80", int64(0), []byte(`{"customer": {"lastName": "\ud800"}, "call": true, "n": 1e400}`))
	f.Add("x", int64(9007199254740993), []byte(`[1, 2]`))
	safe := mustTmpl(f, safeBody)
	quoted := mustTmpl(f, `{"order": "{{ order }}", "item": "{{ order.items.0.offer.name }}", "call": "{{ order.call }}", `+
		`"n": "{{ order.n }}", "customer": {{ order.customer|json_encode }}, "d": "{{ order.missing|default('"') }}"}`)
	f.Fuzz(func(t *testing.T, lastName string, id int64, raw []byte) {
		var order map[string]any
		if json.Unmarshal(raw, &order) != nil || order == nil {
			order = map[string]any{}
		}
		order["id"] = id
		order["customer"] = map[string]any{"lastName": lastName}
		ev := eventWithOrder(t, order)
		r, err := Render(config.Webhook{Format: FormatTemplate, Body: safe}, ev)
		if err != nil {
			t.Fatal(err)
		}
		checkSafeBody(t, r.Body, string([]rune(lastName)), strconv.FormatInt(id, 10))

		if !json.Valid(raw) {
			return
		}
		ev.Order = raw
		r, err = Render(config.Webhook{Format: FormatTemplate, Body: quoted}, ev)
		if err != nil {
			t.Fatalf("valid order %q: %v", raw, err)
		}
		if r.ContentType != contentJSON || !json.Valid(r.Body) {
			t.Fatalf("order %q rendered %q (%s)", raw, r.Body, r.ContentType)
		}
	})
}

// The example config's chat webhook is the form the docs recommend: with
// hostile names it still sends JSON with the names inside its text.
func TestExampleChatWebhookIsSafe(t *testing.T) {
	t.Setenv("GHANA_API_KEY", "example-key")
	t.Setenv("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	cfg, err := config.Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Account("ghana")
	i := slices.IndexFunc(a.Webhooks, func(w config.Webhook) bool { return w.Name == "chat" })
	if i < 0 {
		t.Fatal("no chat webhook in config.example.yaml")
	}
	for _, name := range hostileNames {
		order := map[string]any{"id": 4242, "number": "4242A", "items": []any{map[string]any{"offer": map[string]any{"name": name}}},
			"customer": map[string]any{"firstName": name, "lastName": name}}
		r, err := Render(a.Webhooks[i], eventWithOrder(t, order))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Text    string `json:"text"`
			OrderID int64  `json:"order_id"`
			Items   []struct {
				Offer struct{ Name string } `json:"offer"`
			} `json:"items"`
		}
		d := json.NewDecoder(bytes.NewReader(r.Body))
		d.DisallowUnknownFields()
		if err := d.Decode(&got); err != nil {
			t.Fatalf("name %q: body %s: %v", name, r.Body, err)
		}
		want := "Order 4242A of " + name + " " + name + " is approved (ghana)"
		if r.ContentType != contentJSON || got.Text != want || got.OrderID != 4242 || len(got.Items) != 1 || got.Items[0].Offer.Name != name {
			t.Errorf("name %q: %s %+v", name, r.ContentType, got)
		}
	}
}
