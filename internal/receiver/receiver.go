// Package receiver is a webhook endpoint for the demo and the tests: an
// http.Handler that verifies Standard Webhooks signatures with the
// official library and records every delivery it accepts, endpoints told
// apart by URL path. It answers 200 "OK" to every request; tests that need
// failures wrap it.
package receiver

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

// Receiver is the endpoint. Safe for concurrent use.
type Receiver struct {
	// OnDelivery, when set, is called (outside the lock) for each accepted
	// request. Set it before the receiver serves.
	OnDelivery func(Delivery)

	mu        sync.Mutex
	verifiers map[string]*standardwebhooks.Webhook // path -> verifier
	got       []Delivery
}

// New returns a receiver with no endpoints secured yet.
func New() *Receiver {
	return &Receiver{verifiers: map[string]*standardwebhooks.Webhook{}}
}

// NewSecret returns a fresh Standard Webhooks secret, "whsec_" + base64 key.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
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

// ServeHTTP implements http.Handler: it reads the body, verifies it when
// the path is secured, answers 200 "OK" and records the delivery (a bad
// signature is recorded too, with SignatureOK false).
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	wh := rc.verifiers[r.URL.Path]
	rc.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	d := Delivery{
		Path: r.URL.Path, ID: r.Header.Get(standardwebhooks.HeaderWebhookID), Method: r.Method,
		ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone(),
		Query: r.URL.Query(), Body: body, SignatureOK: true, At: time.Now(),
	}
	if wh != nil {
		if err := wh.Verify(body, r.Header); err != nil {
			d.SignatureOK, d.SignatureErr = false, err.Error()
		}
	}
	rc.mu.Lock()
	rc.got = append(rc.got, d)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK")
	if rc.OnDelivery != nil {
		rc.OnDelivery(d)
	}
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
