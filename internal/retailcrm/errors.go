package retailcrm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Errors returned by the client, compared with errors.Is. An API error
// answer ({success:false, errorMsg, errors}) is an *APIError (errors.As);
// the sentinels are wrapped with the endpoint and the detail, e.g.
// `retailcrm: wrong API key: /api/v5/orders/history: Wrong "apiKey" value.`
// No error text ever contains the API key.
var (
	// ErrUnauthorized: any 401 or 403, e.g. 403 `Wrong "apiKey" value.`
	ErrUnauthorized = errors.New("retailcrm: wrong API key")
	// ErrAccountNotFound: the URL answers with HTML (or a redirect), not the
	// API, or the API answers "Account does not exist".
	ErrAccountNotFound = errors.New("retailcrm: no RetailCRM account at this URL")
	// ErrRateLimited: 503/429 still returned after all retries.
	ErrRateLimited = errors.New("retailcrm: rate limited")
	// ErrUnavailable: another 5xx still returned after all retries, without
	// a JSON error body (e.g. an nginx 502 page).
	ErrUnavailable = errors.New("retailcrm: server error")
	// ErrBadResponse: a body that is not the documented JSON (truncated,
	// malformed, or an entry without a usable id), after all retries.
	ErrBadResponse = errors.New("retailcrm: malformed response")
	// ErrIncompatibleFilter: a history filter with both sinceId and page,
	// which the API refuses with a 400 (sinceId pages by itself). A
	// caller's mistake, refused before any request is made.
	ErrIncompatibleFilter = errors.New("retailcrm: filter[sinceId] cannot be combined with page")
	// ErrNoCertificate: a CA option (ca_file) without a PEM certificate.
	ErrNoCertificate = errors.New("retailcrm: no PEM certificate in the CA file")
)

// APIError is a {success:false} answer.
type APIError struct {
	Endpoint   string // e.g. "/api/v5/orders/history"; "" omits it from Error()
	StatusCode int
	Message    string            // errorMsg
	Errors     map[string]string // errors: a map, or a list keyed "0", "1", ...
}

// Error reads like `retailcrm: /api/v5/orders/history: 400 Errors in the
// filter: filter[sinceId]: must be a number`, the errors sorted by key
// (numerically for list indexes) so the text is deterministic.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("retailcrm: ")
	if e.Endpoint != "" {
		b.WriteString(e.Endpoint + ": ")
	}
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Message != "" {
		b.WriteString(" " + e.Message)
	}
	keys := sortedKeys(e.Errors)
	list := isList(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if !list {
			b.WriteString(k + ": ")
		}
		b.WriteString(e.Errors[k])
	}
	return b.String()
}

// sortedKeys orders numeric keys numerically, before the others.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		na, ea := strconv.Atoi(a)
		nb, eb := strconv.Atoi(b)
		switch {
		case ea == nil && eb == nil:
			return cmp.Compare(na, nb)
		case ea == nil:
			return -1
		case eb == nil:
			return 1
		}
		return strings.Compare(a, b)
	})
	return keys
}

// isList reports whether sorted keys are exactly "0", "1", ..., i.e. the
// errors came as a JSON list and their keys carry no meaning.
func isList(keys []string) bool {
	for i, k := range keys {
		if k != strconv.Itoa(i) {
			return false
		}
	}
	return len(keys) > 0
}

// decodeErrors turns "errors" (an object or a list; values strings or any
// JSON) into a map; a list is keyed "0", "1", ...
func decodeErrors(raw json.RawMessage) map[string]string {
	raw = bytes.TrimSpace(raw)
	var items map[string]json.RawMessage
	if len(raw) > 0 && raw[0] == '[' {
		var l []json.RawMessage
		if json.Unmarshal(raw, &l) != nil || len(l) == 0 {
			return nil
		}
		items = make(map[string]json.RawMessage, len(l))
		for i, v := range l {
			items[strconv.Itoa(i)] = v
		}
	} else if json.Unmarshal(raw, &items) != nil || len(items) == 0 {
		return nil
	}
	out := make(map[string]string, len(items))
	for k, v := range items {
		var s string
		if json.Unmarshal(v, &s) != nil {
			var c bytes.Buffer
			if json.Compact(&c, v) == nil {
				s = c.String()
			} else {
				s = string(v)
			}
		}
		out[k] = s
	}
	return out
}

// envelope is what every answer shares. success is lenient: mocks and
// PHP clients send "true", 1 and the like.
type envelope struct {
	Success  lenientFlag     `json:"success"`
	ErrorMsg lenientString   `json:"errorMsg"`
	Errors   json.RawMessage `json:"errors"`
}

// classify turns an HTTP answer into nil (a successful JSON answer) or the
// error it means. Statuses decide first: RetailCRM's 403 and 503 bodies
// vary. A success flag that is absent or unrecognised leaves the decision
// to the status code.
func classify(path string, code int, h http.Header, body []byte) error {
	var env envelope
	envErr := unmarshalObject(body, &env)
	html := isHTML(h.Get("Content-Type"), body)
	detail := "HTTP " + strconv.Itoa(code)
	if env.ErrorMsg != "" {
		detail += " " + string(env.ErrorMsg)
	}
	switch {
	case envErr == nil && accountMissing(string(env.ErrorMsg)):
		return fmt.Errorf("%w: %s: %s", ErrAccountNotFound, path, detail)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%w: %s: %s", ErrUnauthorized, path, detail)
	case code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests:
		if ra := h.Get("Retry-After"); ra != "" {
			detail += " (Retry-After " + ra + ")"
		}
		return fmt.Errorf("%w: %s: %s", ErrRateLimited, path, detail)
	case code >= 300 && code < 400:
		return fmt.Errorf("%w: %s: %s redirect to %q", ErrAccountNotFound, path, detail, h.Get("Location"))
	case html && code < 500:
		return fmt.Errorf("%w: %s: %s with an HTML page", ErrAccountNotFound, path, detail)
	case envErr == nil && (code >= 400 || (env.Success.set && !env.Success.value)):
		msg := string(env.ErrorMsg)
		if msg == "" {
			msg = http.StatusText(code)
		}
		return &APIError{Endpoint: path, StatusCode: code, Message: msg, Errors: decodeErrors(env.Errors)}
	case code >= 500:
		return fmt.Errorf("%w: %s: %s", ErrUnavailable, path, detail)
	case envErr != nil:
		return fmt.Errorf("%w: %s: %s: %w", ErrBadResponse, path, detail, envErr)
	case code < 200 || code >= 300:
		return fmt.Errorf("%w: %s: unexpected %s", ErrBadResponse, path, detail)
	}
	return nil
}

// accountMissing recognises the answer of a RetailCRM host that has no
// such account, "Account does not exist" with or without the full stop
// (the official Go client maps it the same way).
func accountMissing(msg string) bool {
	return strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(msg), "."), "Account does not exist")
}

// isHTML: RetailCRM always answers JSON, so an HTML page (by type or by
// its first byte) comes from something else at that URL.
func isHTML(contentType string, body []byte) bool {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/html") {
		return true
	}
	b := strings.TrimLeft(string(body[:min(len(body), 64)]), " \t\r\n\ufeff")
	return strings.HasPrefix(b, "<")
}
