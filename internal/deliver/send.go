package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/redact"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retryafter"
)

// Errors, compared with errors.Is. A transport error (timeout, refused
// connection) is returned wrapped as it is.
var (
	// ErrStatus: the receiver answered with a status other than 2xx.
	ErrStatus = errors.New("deliver: receiver did not answer 2xx")
	// ErrSuccessBody: a 2xx whose body is not the webhook's success_body.
	ErrSuccessBody = errors.New("deliver: response body is not success_body")
	// ErrBadSecret: a webhook secret is not "whsec_" + base64.
	ErrBadSecret = errors.New("deliver: webhook secret is not whsec_ + base64")
)

// Limits on what is read of a response.
const (
	maxResponseBody = 64 << 10 // read for success_body; the rest is dropped
	maxSnippet      = 512      // kept in Result.Body for logs and dead letters
)

// Result is what one attempt observed. Status is 0 when no response came.
type Result struct {
	Status     int
	Body       string        // start of the response body, for logs and dead letters
	RetryAfter time.Duration // from a Retry-After header, 0 if none
	Duration   time.Duration // request sent to response read
}

// NewClient returns the HTTP client delivery uses by default: redirects are
// not followed (a 3xx is a failed attempt, never a silent POST elsewhere),
// and enough idle connections per host for the workers to reuse them.
func NewClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

var defaultClient = NewClient()

// Send makes one delivery attempt of ev to wh at time now (the
// webhook-timestamp): render, sign, send with wh.Timeout, read at most
// 64 KiB of the answer. A nil c uses a default client. Redirects are never
// followed, whatever c says. The error is nil only for a success: 2xx, and
// the trimmed body equal to wh.SuccessBody when that is set.
func Send(ctx context.Context, c *http.Client, wh config.Webhook, ev event.Event, ua string, now time.Time) (Result, error) {
	r, err := Render(wh, ev)
	if err != nil {
		return Result{}, err
	}
	ks, err := keys(wh.Secrets)
	if err != nil {
		return Result{}, fmt.Errorf("webhook %s: %w", wh.Name, err)
	}
	if c == nil {
		c = defaultClient
	}
	nc := *c // a copy, so the caller's client keeps its own redirect policy
	nc.CheckRedirect = noRedirect

	if wh.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wh.Timeout)
		defer cancel()
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return Result{}, fmt.Errorf("deliver: webhook %s: %w", wh.Name, err)
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	req.Header.Set("User-Agent", ua)
	for k, v := range wh.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	ts := now.Unix()
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if len(ks) > 0 {
		req.Header.Set(HeaderSignature, Sign(ks, ev.ID, ts, r.Body))
	}

	start := time.Now()
	resp, err := nc.Do(req)
	if err != nil {
		// Its URL may carry a token, and the error ends up in logs, dead
		// letters and alert mails.
		err = redact.URLError(err)
		return Result{Duration: time.Since(start)}, fmt.Errorf("deliver: %s to webhook %s: %w", r.Method, wh.Name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	res := Result{
		Status:     resp.StatusCode,
		Body:       snippet(raw),
		RetryAfter: retryafter.Parse(resp.Header.Get("Retry-After"), now),
		Duration:   time.Since(start),
	}
	if err != nil {
		return res, fmt.Errorf("deliver: %s: read response: %w", wh.Name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return res, fmt.Errorf("%w: %d", ErrStatus, resp.StatusCode)
	}
	if wh.SuccessBody != "" && strings.TrimSpace(string(raw)) != wh.SuccessBody {
		return res, fmt.Errorf("%w: got %q", ErrSuccessBody, res.Body)
	}
	return res, nil
}

// snippet keeps the start of a response body, trimmed, for logs.
func snippet(b []byte) string {
	if len(b) > maxSnippet {
		b = b[:maxSnippet]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "")
}
