package retailcrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retryafter"
)

// retryCondition decides, per attempt, whether resty tries again: on
// transport errors and timeouts, on 429/500/502/503/504, and on a 2xx JSON
// body that does not parse (a body cut off in transit). Never after the
// caller's context ended or when the rate-limit wait gave up.
func retryCondition(ctx context.Context) resty.RetryConditionFunc {
	return func(r *resty.Response, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			var le *limiterError
			return !errors.As(err, &le) && !errors.Is(err, resty.ErrResponseBodyTooLarge)
		}
		if r == nil {
			return false
		}
		switch r.StatusCode() {
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return r.IsSuccess() && !isHTML(r.Header().Get("Content-Type"), r.Body()) && !json.Valid(r.Body())
	}
}

// retryAfterTooLong ends the retries when the server asks for a longer
// pause than RetryMaxWait: retrying sooner would only be refused again.
type retryAfterTooLong struct{ wait, max time.Duration }

func (e *retryAfterTooLong) Error() string {
	return fmt.Sprintf("Retry-After %v exceeds the longest retry wait %v", e.wait, e.max)
}

// retryAfter parses a Retry-After header, in seconds or as an HTTP date.
// It returns 0 (resty's exponential backoff with jitter) when the header is
// absent, unparsable or already past.
func retryAfter(h string, now time.Time, max time.Duration) (time.Duration, error) {
	d := retryafter.Parse(h, now)
	if d <= 0 {
		return 0, nil
	}
	if d > max {
		return 0, &retryAfterTooLong{wait: d, max: max}
	}
	return d, nil
}
