package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"   ", 0},
		{"0", 0},
		{"-5", 0},
		{"3", 3 * time.Second},
		{" 7 ", 7 * time.Second},
		{"120", 2 * time.Minute},
		{"31536000", Max}, // a year: exactly the cap
		{"31536001", Max},
		{"99999999999999999999", 0}, // does not fit an int64: not a number of seconds
		{"+30", 30 * time.Second},
		{"3.5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Format(http.TimeFormat), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", Max},
		{"Mon Jan  2 15:04:05 9999", Max},
		{"Sunday, 06-Nov-94 08:49:37 GMT", 0},
	}
	for _, tt := range tests {
		if got := Parse(tt.in, now); got != tt.want {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// FuzzParse: whatever a server sends, the wait is in [0, Max], and a value
// that parses as a whole number of seconds gives exactly that many seconds
// (capped at Max).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0", "120", "-5", "99999999999999999999", "Mon, 23 Nov 2026 10:01:30 GMT", "soon",
		"Sunday, 06-Nov-94 08:49:37 GMT", "+30", " 30 ", "3.5", "31536000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := Parse(v, now)
		if d < 0 || d > Max {
			t.Fatalf("Parse(%q) = %v", v, d)
		}
		if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			want := time.Duration(0)
			if s > 0 {
				want = min(time.Duration(min(s, int64(Max/time.Second)))*time.Second, Max)
			}
			if d != want {
				t.Fatalf("Parse(%q) = %v, want %v seconds", v, d, want)
			}
		}
	})
}
