// Package testkit holds helpers that the tests of several packages share:
// the metric contract (docs/REFERENCE.md, "Metrics"), a URL nothing listens
// on, a buffer for logs written from many goroutines, a signed webhook
// request, a test PKI and the systemd unit's restart rule. Only _test.go
// files import it.
package testkit

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// ContractMetrics are the metric families of the contract that operators and
// dashboards rely on (docs/REFERENCE.md, "Metrics"), with their label
// names sorted (histograms without "le").
var ContractMetrics = map[string][]string{
	"poller_polls_total":                            {"account", "result"},
	"poller_api_requests_total":                     {"account", "code", "endpoint"},
	"poller_events_detected_total":                  {"account", "type"},
	"poller_deliveries_total":                       {"account", "result", "webhook"},
	"poller_outbox_pending":                         {"account"},
	"poller_dead_letters":                           {"account"},
	"poller_cursor_history_id":                      {"account"},
	"poller_last_poll_success_timestamp_seconds":    {"account"},
	"poller_delivery_latency_seconds":               {"account"},
	"poller_build_info":                             {"go_version", "version"},
	"poller_account_up":                             {"account"},
	"poller_account_last_success_timestamp_seconds": {"account"},
	"poller_webhook_oldest_pending_seconds":         {"account", "webhook"},
}

// Families parses a Prometheus text exposition.
func Families(t testing.TB, exposition string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// CheckContractMetrics fails t unless the exposition has every ContractMetrics
// family, each sample carrying exactly the family's label names.
func CheckContractMetrics(t testing.TB, exposition string) {
	t.Helper()
	fams := Families(t, exposition)
	for name, labels := range ContractMetrics {
		f, ok := fams[name]
		if !ok || len(f.Metric) == 0 {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		for _, m := range f.Metric {
			var got []string
			for _, l := range m.Label {
				got = append(got, l.GetName())
			}
			sort.Strings(got)
			if !slices.Equal(got, labels) {
				t.Errorf("%s: labels %v, want %v", name, got, labels)
			}
		}
	}
}

// ClosedURL returns an http URL on which nothing listens.
func ClosedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers: the log output
// of a daemon, a client or a child process under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// SignedRequest is a POST of {"id": id} to url with Standard Webhooks
// headers: signed with secret, or with a wrong signature when sign is false.
func SignedRequest(t testing.TB, url, secret, id string, sign bool) *http.Request {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"` + id + `"}`)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign(id, now, body)
	if err != nil {
		t.Fatal(err)
	}
	if !sign {
		sig = "v1,AAAA"
	}
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	return req
}
