package deliver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

// Standard Webhooks header names (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix marks a Standard Webhooks secret; the rest is the base64 key.
const secretPrefix = "whsec_"

// Key decodes a "whsec_<base64>" secret into the HMAC key. The prefix is
// optional, as in the official libraries.
func Key(s config.Secret) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.Reveal(), secretPrefix))
	if err != nil {
		// The decoder's error names a byte offset, never the secret itself.
		return nil, fmt.Errorf("%w: %w", ErrBadSecret, err)
	}
	return key, nil
}

// Sign returns the webhook-signature value for one message: "v1,<base64
// HMAC-SHA256(key, id.timestamp.body)>" per key, space-separated, so a
// receiver that knows either the old or the new secret verifies during
// rotation.
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write(strconv.AppendInt(nil, timestamp, 10))
		mac.Write([]byte{'.'})
		mac.Write(body)
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

// keys decodes all of a webhook's secrets.
func keys(secrets []config.Secret) ([][]byte, error) {
	out := make([][]byte, 0, len(secrets))
	for _, s := range secrets {
		k, err := Key(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
