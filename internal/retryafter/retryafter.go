// Package retryafter parses the HTTP Retry-After header (RFC 9110, section
// 10.2.3) for every client in the project: the RetailCRM API client and
// webhook delivery. Callers decide what a wait means for them; this package
// only turns the header into a bounded duration.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max bounds the wait in both of the header's forms: an HTTP date in year
// 9999 or a huge number of seconds must not overflow or park work for
// centuries. Callers compare against their own, shorter limits.
const Max = 365 * 24 * time.Hour

// Parse returns the wait a Retry-After value v asks for at time now: delay
// seconds or an HTTP date, capped at Max. An absent, unparsable, zero,
// negative or past value is 0.
func Parse(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(Max/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), Max)
	}
	return 0
}
