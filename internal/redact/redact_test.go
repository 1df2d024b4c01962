package redact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestURLError: whatever part of the URL holds the secret, the text of a
// real client error loses it, and the cause is still what it was.
func TestURLError(t *testing.T) {
	const secret = "s3cr3t-t0ken"
	tests := []struct {
		name, url string
	}{
		{"path token", "http://127.0.0.1:1/" + secret + "/api/v5/orders/history"},
		{"user info", "http://" + secret + ":x@127.0.0.1:1/api"}, // net/http masks only the password
		{"query token", "http://127.0.0.1:1/api?apiKey=" + secret},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, raw := http.DefaultClient.Do(req) // nothing listens on port 1
			if raw == nil || !strings.Contains(raw.Error(), secret) {
				t.Fatalf("the client's own error %v does not show the secret: the test proves nothing", raw)
			}
			got := URLError(fmt.Errorf("outer: %w", raw))
			if strings.Contains(got.Error(), secret) || !strings.Contains(got.Error(), "connection refused") {
				t.Errorf("URLError = %q", got)
			}
		})
	}

	// The cause survives: a deadline is still a deadline.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/"+secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	expired, cancelExpired := context.WithCancel(ctx)
	cancelExpired()
	_, raw := http.DefaultClient.Do(req.WithContext(expired))
	if got := URLError(raw); !errors.Is(got, context.Canceled) || strings.Contains(got.Error(), secret) {
		t.Errorf("URLError of a cancelled request = %v", got)
	}
	if plain := errors.New("plain"); URLError(plain) != plain {
		t.Error("an error without a URL changed")
	}
}
