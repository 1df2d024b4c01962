// Package redact keeps request URLs out of error text for every HTTP client
// in the project: the RetailCRM API client and webhook delivery. A URL may
// carry a secret (a token in the path, user info, a query parameter), and
// these errors end up in logs, `poller status`, dead letters, alert mails
// and `poller check -online`.
package redact

import (
	"errors"
	"net/url"
)

// URLError returns the cause inside the *url.Error that net/http wraps
// every client error in ("Get \"https://host/TOKEN/...\": dial tcp ...:
// connection refused" becomes "dial tcp ...: connection refused"), so the
// URL is never printed. The cause keeps what errors.Is needs (deadlines,
// cancellation, net errors). Call it on the error of the request itself:
// wrappers around the *url.Error are dropped with it. err without a
// *url.Error is returned as is.
func URLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
