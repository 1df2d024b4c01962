package demo

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Fault is what the receiver does with one request instead of answering
// 200. The end-to-end suite uses them; the demo answers every request.
type Fault int

// Faults a Receiver can inject.
const (
	NoFault     Fault = iota
	Fail500           // answer 500
	Fail503           // answer 503 with Retry-After: 1
	Gone              // answer 410: the poller dead-letters at once
	Hang              // wait HangFor (or until the client gives up), then answer 200
	Reset             // hijack the connection and close it without an answer
	SlowBody          // answer 200, dribbling the body out over HangFor
	Fail503Year       // answer 503 with Retry-After: 31536000 (a year)
)

// Delivery is one request that the receiver answered with 2xx.
type Delivery struct {
	Path         string
	ID           string // webhook-id
	Method       string
	ContentType  string
	Header       http.Header
	Query        url.Values
	Body         []byte
	SignatureOK  bool   // false when the endpoint has a secret and verification failed
	SignatureErr string // why verification failed
	At           time.Time
}

// Receiver is a webhook endpoint (an http.Handler) that verifies Standard
// Webhooks signatures with the official library, records every delivery it
// accepted and can inject faults. Endpoints are told apart by URL path.
type Receiver struct {
	// OnDelivery, when set, is called (outside the lock) for each accepted
	// request. Set it before the receiver serves.
	OnDelivery func(Delivery)

	mu        sync.Mutex
	fault     func(r *http.Request, attempt int) Fault
	hangFor   time.Duration
	verifiers map[string]*standardwebhooks.Webhook // path -> verifier
	attempts  map[key]int
	got       []Delivery
}

type key struct{ path, id string }

// NewReceiver returns a receiver with no endpoints secured yet.
func NewReceiver() *Receiver {
	return &Receiver{verifiers: map[string]*standardwebhooks.Webhook{}, attempts: map[key]int{}}
}

// NewSecret returns a fresh Standard Webhooks secret, "whsec_" + base64 key.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// SetFault makes pick choose a fault for each request before it is read
// (nil: none); attempt counts the requests with this path and webhook-id,
// from 1. Hang and SlowBody take hangFor (0: 30s). Safe while serving.
func (rc *Receiver) SetFault(pick func(r *http.Request, attempt int) Fault, hangFor time.Duration) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.fault, rc.hangFor = pick, hangFor
}

// Secure makes the receiver verify the signatures of requests to path
// with secret ("whsec_..."). Requests to other paths are not verified.
func (rc *Receiver) Secure(path, secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.verifiers[path] = wh
	return nil
}

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(standardwebhooks.HeaderWebhookID)
	rc.mu.Lock()
	k := key{r.URL.Path, id}
	rc.attempts[k]++
	attempt := rc.attempts[k]
	wh := rc.verifiers[r.URL.Path]
	pick, hang := rc.fault, rc.hangFor
	rc.mu.Unlock()

	f := NoFault
	if pick != nil {
		f = pick(r, attempt)
	}
	if hang <= 0 {
		hang = 30 * time.Second
	}
	switch f {
	case Fail500:
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	case Fail503:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "injected overload", http.StatusServiceUnavailable)
		return
	case Fail503Year:
		w.Header().Set("Retry-After", "31536000")
		http.Error(w, "injected overload, come back next year", http.StatusServiceUnavailable)
		return
	case Gone:
		http.Error(w, "gone", http.StatusGone)
		return
	case Reset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	case Hang:
		select {
		case <-time.After(hang):
		case <-r.Context().Done():
			return
		}
	}

	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	d := Delivery{
		Path: r.URL.Path, ID: id, Method: r.Method,
		ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone(),
		Query: r.URL.Query(), Body: body, SignatureOK: true, At: time.Now(),
	}
	if wh != nil {
		if err := wh.Verify(body, r.Header); err != nil {
			d.SignatureOK, d.SignatureErr = false, err.Error()
		}
	}
	if f == SlowBody {
		if !dribble(w, r, hang) {
			return // the client gave up: not delivered
		}
	} else {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "OK")
	}
	rc.mu.Lock()
	rc.got = append(rc.got, d)
	rc.mu.Unlock()
	if rc.OnDelivery != nil {
		rc.OnDelivery(d)
	}
}

// dribble writes "OK" one byte at a time over d; false if the client left.
func dribble(w http.ResponseWriter, r *http.Request, d time.Duration) bool {
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	for _, b := range []byte("OK") {
		if _, err := w.Write([]byte{b}); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-time.After(d / 2):
		case <-r.Context().Done():
			return false
		}
	}
	return true
}

// Deliveries returns a copy of the accepted requests, in arrival order.
func (rc *Receiver) Deliveries() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Delivery(nil), rc.got...)
}

// Counts returns, for path ("" every path), how often each webhook-id was
// accepted.
func (rc *Receiver) Counts(path string) map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]int{}
	for _, d := range rc.got {
		if path == "" || d.Path == path {
			out[d.ID]++
		}
	}
	return out
}

// Attempts returns how many requests (accepted or not) path got for id.
func (rc *Receiver) Attempts(path, id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts[key{path, id}]
}
