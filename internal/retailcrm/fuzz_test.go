package retailcrm

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzRetryAfter: whatever a server puts in Retry-After, the wait is
// between 0 and the longest allowed wait, and a refused wait is reported as
// too long only when it really is.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{"", "0", "3", " 7 ", "-3", "61", "99999999999999999999", "+5", "1e3", "0x10",
		now.Add(5 * time.Second).Format(http.TimeFormat), now.Add(time.Hour).Format(http.TimeFormat),
		"Mon Jan  2 15:04:05 9999", "Sunday, 06-Nov-94 08:49:37 GMT", "soon"} {
		f.Add(s, int64(time.Minute))
	}
	f.Fuzz(func(t *testing.T, h string, maxNS int64) {
		maxWait := time.Duration(maxNS)
		d, err := retryAfter(h, now, maxWait)
		var tl *retryAfterTooLong
		switch {
		case d < 0 || d > max(maxWait, 0):
			t.Fatalf("retryAfter(%q, max %v) = %v", h, maxWait, d)
		case err != nil && (d != 0 || !errors.As(err, &tl) || tl.wait <= tl.max || tl.max != maxWait):
			t.Fatalf("retryAfter(%q, max %v) = %v, %v", h, maxWait, d, err)
		}
	})
}

// FuzzClassify: any status, content type and body yields nil only for a 2xx
// JSON object that is not an error answer, otherwise an error of a known
// kind, and the error text is deterministic.
func FuzzClassify(f *testing.F) {
	for _, c := range []struct {
		code int
		file string
	}{{200, "history.json"}, {200, "truncated.json"}, {400, "error_filter.json"}, {400, "error_list.json"},
		{403, "forbidden.json"}, {404, "not_found.html"}, {502, "bad_gateway.html"}, {503, "rate_limited.json"},
		{500, "server_error.json"}, {200, "credentials.json"}, {200, "settings.json"}} {
		f.Add(c.code, "application/json", file(f, c.file))
	}
	for _, name := range sampleFiles(f) {
		f.Add(200, "application/json", file(f, name))
	}
	f.Add(200, "application/json", []byte(`{"success":"true"}`))
	f.Add(200, "application/json", []byte(`{"success":"0","errorMsg":"no"}`))
	f.Add(400, "application/json", []byte(`{"success":false,"errorMsg":"Account does not exist."}`))
	f.Add(200, "text/html; charset=utf-8", []byte(`{"success":true}`))
	f.Add(200, "", []byte("\ufeff <html>"))
	f.Add(302, "", []byte(nil))
	f.Add(200, "application/json", []byte(`{"success":false,"errors":["a",{"b":1},null]}`))
	f.Add(418, "application/json", []byte(`{"errorMsg":17,"errors":{"10":"x","9":"y","k":[1]}}`))
	f.Fuzz(func(t *testing.T, code int, contentType string, body []byte) {
		h := http.Header{"Content-Type": {contentType}, "Retry-After": {"1"}, "Location": {"/login"}}
		err := classify("/api/v5/orders", code, h, body)
		if err == nil {
			if code < 200 || code >= 300 || !isObject(body) || isHTML(contentType, body) {
				t.Fatalf("HTTP %d %q %.80q classified as success", code, contentType, body)
			}
			return
		}
		var ae *APIError
		known := errors.As(err, &ae)
		for _, s := range []error{ErrUnauthorized, ErrAccountNotFound, ErrRateLimited, ErrUnavailable, ErrBadResponse} {
			known = known || errors.Is(err, s)
		}
		if !known {
			t.Fatalf("HTTP %d: error of no known kind: %v", code, err)
		}
		if again := classify("/api/v5/orders", code, h, body); again.Error() != err.Error() {
			t.Fatalf("error text not deterministic:\n%v\n%v", err, again)
		}
		if !strings.Contains(err.Error(), "/api/v5/orders") {
			t.Fatalf("error does not name the endpoint: %v", err)
		}
	})
}
