package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	var logs bytes.Buffer
	s, err := Run(context.Background(), Options{
		Duration: 3 * time.Second,
		Every:    40 * time.Millisecond,
		Seed:     7,
		Out:      &out,
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v\nlogs:\n%s", err, logs.String())
	}
	if s.Lost != 0 || s.Received == 0 || s.Received != s.Qualifying || s.BadSignatures != 0 || s.Unexpected != 0 {
		t.Errorf("summary = %+v, want every qualifying event received, none lost", s)
	}
	if s.Changes <= s.Qualifying {
		t.Errorf("changes %d <= qualifying %d: the driver made no non-qualifying changes", s.Changes, s.Qualifying)
	}
	for _, re := range []string{
		`(?m)^\s+lost\s+0$`,
		`(?m)^\s+received\s+[1-9][0-9]*$`,
		`(?m)^\d\d:\d\d:\d\d\.\d{3}  (ghana|kenya|uganda)\s+order \d+A\s+\S+\s+-> (approved|complete)\s+signature ok\s+latency \S+`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("output does not match %s", re)
		}
	}
	// Every format reached its receiver.
	for _, a := range []string{"ghana", "kenya", "uganda"} {
		if !strings.Contains(out.String(), "  "+a+" ") {
			t.Errorf("no delivery shown for %s", a)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, v := range n {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	tests := []struct {
		in   []time.Duration
		p    int
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(5), 99, 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{ms(4, 1, 3, 2), 99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %d) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	q := url.Values{"order_number": {"7A"}, "old_status": {"new"}, "new_status": {"approved"}}
	tests := []struct {
		name string
		d    Delivery
		want [4]string
	}{
		{"json", Delivery{Path: "/hooks/ghana", ContentType: "application/json",
			Body: []byte(`{"change":{"oldValue":"new","newValue":"approved"},"order":{"number":"5A"}}`)},
			[4]string{"ghana", "5A", "new", "approved"}},
		{"broken json", Delivery{Path: "/hooks/ghana", ContentType: "application/json", Body: []byte(`{`)},
			[4]string{"ghana", "?", "?", "?"}},
		{"form", Delivery{Path: "/hooks/kenya", ContentType: "application/x-www-form-urlencoded",
			Body: []byte(q.Encode())}, [4]string{"kenya", "7A", "new", "approved"}},
		{"query", Delivery{Path: "/hooks/uganda", Query: q}, [4]string{"uganda", "7A", "new", "approved"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, n, o, nw := describe(tt.d)
			if got := [4]string{a, n, o, nw}; got != tt.want {
				t.Errorf("describe = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReceiver checks the signature verification and every fault mode.
func TestReceiver(t *testing.T) {
	secret := NewSecret()
	rc := NewReceiver()
	if err := rc.Secure("/s", secret); err != nil {
		t.Fatal(err)
	}
	faults := map[string]Fault{}
	rc.SetFault(func(r *http.Request, attempt int) Fault {
		if attempt > 1 {
			return NoFault
		}
		return faults[r.Header.Get("webhook-id")]
	}, 200*time.Millisecond)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	send := func(id string, sign bool, timeout time.Duration) (int, error) {
		body := []byte(`{"id":"` + id + `"}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/s", bytes.NewReader(body))
		now := time.Now()
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		sig, _ := wh.Sign(id, now, body)
		if !sign {
			sig = "v1,AAAA"
		}
		req.Header.Set("webhook-signature", sig)
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
		fault   Fault
		sign    bool
		timeout time.Duration
		code    int
		fails   bool
	}{
		{"ok", NoFault, true, time.Second, 200, false},
		{"badsig", NoFault, false, time.Second, 200, false},
		{"f500", Fail500, true, time.Second, 500, false},
		{"f503", Fail503, true, time.Second, 503, false},
		{"gone", Gone, true, time.Second, 410, false},
		{"reset", Reset, true, time.Second, 0, true},
		{"hang-timeout", Hang, true, 50 * time.Millisecond, 0, true},
		{"hang-ok", Hang, true, time.Second, 200, false},
		{"slow", SlowBody, true, time.Second, 200, false},
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
