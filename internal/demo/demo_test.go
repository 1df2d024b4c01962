package demo

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
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
		// ghana's second webhook, on its payment condition.
		`(?m)^\d\d:\d\d:\d\d\.\d{3}  ghana\s+order \d+A\s+payment\s+-> paid\s+signature ok\s+latency \d`,
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

// However short the demo and whatever the seed, its first change approves
// an order, so the user sees at least one webhook.
func TestRunShowsAWebhookAtOnce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			var out bytes.Buffer
			s, err := Run(context.Background(), Options{
				Duration: time.Second, // one change, with room for a late tick
				Every:    600 * time.Millisecond,
				Seed:     seed,
				Out:      &out,
				Logger:   slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if s.Changes != 1 || s.Qualifying != 1 || s.Received != 1 {
				t.Errorf("changes %d, qualifying %d, received %d; want 1, 1, 1\n%s", s.Changes, s.Qualifying, s.Received, out.String())
			}
		})
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
		d    receiver.Delivery
		want [4]string
	}{
		{"json", receiver.Delivery{Path: "/hooks/ghana", ContentType: "application/json",
			Body: []byte(`{"change":{"oldValue":"new","newValue":"approved"},"order":{"number":"5A"}}`)},
			[4]string{"ghana", "5A", "new", "approved"}},
		{"order.changed", receiver.Delivery{Path: "/hooks/ghana-paid", ContentType: "application/json",
			Body: []byte(`{"type":"order.changed","change":{"oldValue":"","newValue":""},"order":{"number":"6A"}}`)},
			[4]string{"ghana", "6A", "payment", "paid"}},
		{"broken json", receiver.Delivery{Path: "/hooks/ghana", ContentType: "application/json", Body: []byte(`{`)},
			[4]string{"ghana", "?", "?", "?"}},
		{"form", receiver.Delivery{Path: "/hooks/kenya", ContentType: "application/x-www-form-urlencoded",
			Body: []byte(q.Encode())}, [4]string{"kenya", "7A", "new", "approved"}},
		{"query", receiver.Delivery{Path: "/hooks/uganda", Query: q}, [4]string{"uganda", "7A", "new", "approved"}},
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
