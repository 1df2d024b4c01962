// Command receiver is an example retailcrm-poller webhook receiver built on
// the Standard Webhooks Go library. It
//
//  1. verifies the signature on the RAW request bytes,
//  2. deduplicates on the webhook-id header (delivery is at-least-once),
//  3. answers 200 at once and does its work after, in a worker,
//
// and handles every body the poller sends: format json (the event envelope
// or params as a JSON object), form (urlencoded), template (your own body,
// JSON or text) and query (no body at all).
//
// Environment: WEBHOOK_SECRET (whsec_..., several space-separated while
// rotating), PORT (default 8080), HOST (default all interfaces). Every line
// it prints is one JSON object: "listening", "processed", "test event"
// (what `poller send-test` sends), "duplicate", "rejected", "cannot parse".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// maxBody bounds what is read of one request.
const maxBody = 10 << 20

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(log); err != nil {
		log.Error("receiver stopped", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	var verifiers []*standardwebhooks.Webhook
	for _, s := range strings.Fields(os.Getenv("WEBHOOK_SECRET")) {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return fmt.Errorf("WEBHOOK_SECRET: %w", err) // the library's error names no secret byte
		}
		verifiers = append(verifiers, wh)
	}
	if len(verifiers) == 0 {
		return errors.New("WEBHOOK_SECRET is not set (whsec_...)")
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("HOST"), port))
	if err != nil {
		return err
	}

	rc := &receiver{log: log, verifiers: verifiers, seen: newSeenSet(100_000), jobs: make(chan job, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range rc.jobs {
			rc.work(j)
		}
	}()
	mux := http.NewServeMux()
	mux.Handle("/webhook", rc)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Info("listening", "addr", "http://"+ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	close(rc.jobs) // no handler runs after Shutdown: finish the accepted work
	<-done
	return nil
}

// job is one accepted delivery, worked on after the answer.
type job struct {
	id          string
	contentType string
	body        []byte
	query       url.Values
}

type receiver struct {
	log       *slog.Logger
	verifiers []*standardwebhooks.Webhook
	jobs      chan job

	mu   sync.Mutex
	seen *seenSet
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The signature covers "webhook-id.webhook-timestamp.body" byte for
	// byte: verify the bytes as read, before any parsing.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	id := r.Header.Get(standardwebhooks.HeaderWebhookID)
	if !rc.verified(body, r.Header) {
		rc.log.Warn("rejected", "id", id, "reason", "signature")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	j := job{id: id, contentType: r.Header.Get("Content-Type"), body: body, query: r.URL.Query()}

	rc.mu.Lock()
	dup := rc.seen.has(id)
	queued := false
	if !dup {
		select {
		case rc.jobs <- j:
			rc.seen.add(id)
			queued = true
		default: // the worker is behind: not accepted, so the poller retries
		}
	}
	rc.mu.Unlock()

	switch {
	case dup:
		rc.log.Info("duplicate", "id", id)
	case !queued:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	// Answer at once: the poller waits for this answer (timeout 10s by
	// default) before it sends this order's next event. An app that must not
	// lose an event stores it durably (with its id) before answering.
	_, _ = io.WriteString(w, "OK")
}

// verified reports whether any configured secret verifies the request
// (Verify also refuses a timestamp more than 5 minutes off).
func (rc *receiver) verified(body []byte, h http.Header) bool {
	for _, wh := range rc.verifiers {
		if wh.Verify(body, h) == nil {
			return true
		}
	}
	return false
}

// work parses a delivery by its Content-Type and does the app's work
// (here: one log line).
func (rc *receiver) work(j job) {
	kind, signed := "", true
	var data any
	mt, _, _ := mime.ParseMediaType(j.contentType)
	switch {
	case len(j.body) == 0:
		// format: query (or a GET form): the parameters are in the URL,
		// and the signature covers only webhook-id and webhook-timestamp
		// (the body is empty). Do not trust these values: look the order up.
		kind, signed = "query", false
		data = flatten(j.query)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		kind = "json" // the event envelope, json params, or a JSON template
		if err := json.Unmarshal(j.body, &data); err != nil {
			rc.log.Error("cannot parse", "id", j.id, "kind", kind, "error", err)
			return
		}
	case mt == "application/x-www-form-urlencoded":
		kind = "form"
		q, err := url.ParseQuery(string(j.body))
		if err != nil {
			rc.log.Error("cannot parse", "id", j.id, "kind", kind, "error", err)
			return
		}
		data = flatten(q)
	default:
		kind = "text" // a text template
		data = string(j.body)
	}
	if isTest(data) {
		// `poller send-test`: answered like any event, no work done.
		rc.log.Info("test event", "id", j.id, "kind", kind, "signed", signed)
		return
	}
	rc.log.Info("processed", "id", j.id, "kind", kind, "signed", signed, "data", data)
}

// testType is the type of the synthetic event `poller send-test` sends.
const testType = "poller.test"

// isTest reports whether a delivery is a test event: the envelope's type,
// or an event_type parameter (params: {event_type: "{{ event.type }}"}).
func isTest(data any) bool {
	switch d := data.(type) {
	case map[string]any:
		return d["type"] == testType || d["event_type"] == testType
	case map[string]string:
		return d["type"] == testType || d["event_type"] == testType
	}
	return false
}

// flatten keeps the first value of each parameter.
func flatten(v url.Values) map[string]string {
	m := make(map[string]string, len(v))
	for k, vs := range v {
		m[k] = vs[0]
	}
	return m
}

// seenSet holds the last n webhook-ids accepted. The poller retries an
// event for up to its retry.max_age (default 72h), so a real app keeps ids
// at least that long, in its database (a unique key) rather than in memory.
type seenSet struct {
	ids  map[string]struct{}
	ring []string
	next int
}

func newSeenSet(n int) *seenSet {
	return &seenSet{ids: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (s *seenSet) has(id string) bool {
	_, ok := s.ids[id]
	return ok
}

func (s *seenSet) add(id string) {
	delete(s.ids, s.ring[s.next]) // forget the oldest
	s.ring[s.next] = id
	s.next = (s.next + 1) % len(s.ring)
	s.ids[id] = struct{}{}
}
