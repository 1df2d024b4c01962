package deliver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// Formats of config.Webhook.Format.
const (
	FormatJSON     = "json"
	FormatForm     = "form"
	FormatQuery    = "query"
	FormatTemplate = "template"
)

// Content types set by the formats; a configured Content-Type header wins.
const (
	contentJSON = "application/json"
	contentForm = "application/x-www-form-urlencoded"
	contentText = "text/plain; charset=utf-8"
)

// Request is a rendered webhook request, before headers and signing. Body
// is exactly the bytes that are signed and sent.
type Request struct {
	Method      string
	URL         string
	Body        []byte
	ContentType string // "" for no body
}

// TemplateData is what params and bodies are rendered against:
// order (decoded once, numbers kept as json.Number so ids print exactly),
// change, account, event {id, type} and orderMissing; an order.changed
// event adds changeSet (its entries as the envelope has them: historyId,
// field, oldValue, newValue, created, deleted, payment, item), source and
// user.
func TemplateData(ev event.Event) (map[string]any, error) {
	order, err := decodeValue(ev.Order)
	if err != nil {
		return nil, fmt.Errorf("deliver: event %s: decode order: %w", ev.ID, err)
	}
	data := map[string]any{
		"order": order,
		"change": map[string]any{
			"historyId": ev.Change.HistoryID,
			"field":     ev.Change.Field,
			"oldValue":  ev.Change.OldValue,
			"newValue":  ev.Change.NewValue,
			"source":    ev.Change.Source,
			"createdAt": ev.Change.CreatedAt,
		},
		"account":      ev.Account,
		"event":        map[string]any{"id": ev.ID, "type": string(ev.Type)},
		"orderMissing": ev.OrderMissing,
	}
	if ev.Type != event.Changed {
		return data, nil
	}
	set := make([]any, len(ev.ChangeSet))
	for i, e := range ev.ChangeSet {
		m := map[string]any{"historyId": e.HistoryID, "field": e.Field, "created": e.Created, "deleted": e.Deleted}
		for _, v := range []struct {
			key string
			raw json.RawMessage
		}{{"oldValue", e.OldValue}, {"newValue", e.NewValue}, {"payment", e.Payment}, {"item", e.Item}} {
			if m[v.key], err = decodeValue(v.raw); err != nil {
				return nil, fmt.Errorf("deliver: event %s: decode %s of history entry %d: %w", ev.ID, v.key, e.HistoryID, err)
			}
		}
		set[i] = m
	}
	data["changeSet"], data["source"] = set, ev.Source
	if data["user"], err = decodeValue(ev.User); err != nil {
		return nil, fmt.Errorf("deliver: event %s: decode user: %w", ev.ID, err)
	}
	return data, nil
}

// decodeValue decodes one JSON value (nil for none), numbers kept as
// json.Number.
func decodeValue(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the value")
	}
	return v, nil
}

// Render builds the request wh sends for ev.
//
//   - json without params: the event envelope (event.Event as JSON);
//   - json with params: a JSON object of the rendered params (string values,
//     in config order);
//   - form: the params urlencoded in the body (with GET, in the query, as a
//     trigger does: a GET carries no body);
//   - query: the params appended to the URL's query, an empty body;
//   - template: the rendered body, with the Content-Type templateContentType
//     chooses before rendering; under a JSON type every {{ }} output is
//     escaped as the inside of a JSON string (tmpl.Template.RenderJSON).
func Render(wh config.Webhook, ev event.Event) (Request, error) {
	method := strings.ToUpper(wh.Method)
	if method == "" {
		method = http.MethodPost
	}
	req := Request{Method: method, URL: wh.URL}
	format := wh.Format
	if format == "" {
		format = FormatJSON
	}
	if format == FormatJSON && len(wh.Params) == 0 {
		// An Encoder without HTML escaping keeps the order as the API sent
		// it ("&" stays "&", not \u0026).
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(ev); err != nil {
			return Request{}, fmt.Errorf("deliver: event %s: %w", ev.ID, err)
		}
		req.Body, req.ContentType = bytes.TrimSuffix(buf.Bytes(), []byte("\n")), contentJSON
		return req, nil
	}
	data, err := TemplateData(ev)
	if err != nil {
		return Request{}, err
	}
	switch format {
	case FormatJSON:
		req.Body, req.ContentType = paramsJSON(wh.Params, data), contentJSON
	case FormatForm:
		enc := encodeParams(wh.Params, data)
		if method == http.MethodGet {
			req.URL = appendQuery(wh.URL, enc)
		} else {
			req.Body, req.ContentType = []byte(enc), contentForm
		}
	case FormatQuery:
		req.URL = appendQuery(wh.URL, encodeParams(wh.Params, data))
	case FormatTemplate:
		req.ContentType = templateContentType(wh)
		switch {
		case wh.Body == nil:
		case isJSONContentType(req.ContentType):
			req.Body = []byte(wh.Body.RenderJSON(data))
		default:
			req.Body = []byte(wh.Body.Render(data))
		}
	default:
		return Request{}, fmt.Errorf("deliver: webhook %s: unknown format %q", wh.Name, wh.Format)
	}
	return req, nil
}

// templateContentType is the Content-Type of a format: template webhook,
// fixed per webhook before anything is rendered (a value in the order must
// not be able to switch it, and with it the escaping):
//
//  1. a Content-Type in the webhook's headers wins, as configured;
//  2. else a body whose template text begins a JSON value (first non-space
//     character "{" or "[", or a first tag with |json_encode) is
//     application/json;
//  3. else text/plain; charset=utf-8.
func templateContentType(wh config.Webhook) string {
	// Sorted, so that two spellings of the header (which the config should
	// not allow) still give one answer every time.
	for _, name := range slices.Sorted(maps.Keys(wh.Headers)) {
		if strings.EqualFold(name, "Content-Type") {
			return wh.Headers[name]
		}
	}
	if wh.Body != nil && wh.Body.StartsJSON() {
		return contentJSON
	}
	return contentText
}

// isJSONContentType reports whether ct names JSON: application/json or a
// structured "+json" type (application/vnd.api+json), parameters and case
// aside.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == contentJSON || (strings.HasSuffix(mt, "+json") && strings.Contains(mt, "/"))
}

// paramsJSON renders params as a JSON object in config order (a map would
// sort the keys).
func paramsJSON(params []config.Param, data map[string]any) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range params {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, p.Name)
		b.WriteByte(':')
		writeJSONString(&b, renderParam(p, data))
	}
	b.WriteByte('}')
	return b.Bytes()
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

// encodeParams urlencodes params in config order (url.Values.Encode sorts).
func encodeParams(params []config.Param, data map[string]any) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.Name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(renderParam(p, data)))
	}
	return b.String()
}

func renderParam(p config.Param, data map[string]any) string {
	if p.Value == nil {
		return ""
	}
	return p.Value.Render(data)
}

// appendQuery adds an encoded query to u, keeping u's own query and fragment.
func appendQuery(u, enc string) string {
	if enc == "" {
		return u
	}
	frag := ""
	if i := strings.IndexByte(u, '#'); i >= 0 {
		u, frag = u[:i], u[i:]
	}
	switch {
	case !strings.Contains(u, "?"):
		u += "?"
	case !strings.HasSuffix(u, "?") && !strings.HasSuffix(u, "&"):
		u += "&"
	}
	return u + enc + frag
}
