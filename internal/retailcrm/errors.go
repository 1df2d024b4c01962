package retailcrm

import "errors"

// Errors returned by the client, compared with errors.Is. An API error
// answer ({success:false, errorMsg, errors}) is an *APIError (errors.As);
// ErrUnauthorized and ErrAccountNotFound wrap the underlying detail.
var (
	// ErrUnauthorized: 403 with `Wrong "apiKey" value.` or a missing key.
	ErrUnauthorized = errors.New("retailcrm: wrong API key")
	// ErrAccountNotFound: the URL answers with HTML, not the API.
	ErrAccountNotFound = errors.New("retailcrm: no RetailCRM account at this URL")
	// ErrRateLimited: 503/429 still returned after all retries.
	ErrRateLimited = errors.New("retailcrm: rate limited")
	// ErrBadResponse: a body that is not the documented JSON (truncated, malformed).
	ErrBadResponse = errors.New("retailcrm: malformed response")
)

// APIError is a {success:false} answer.
type APIError struct {
	StatusCode int
	Message    string            // errorMsg
	Errors     map[string]string // errors: a map, or a list keyed "0", "1", ...
}

func (e *APIError) Error() string { panic("to be implemented") }
