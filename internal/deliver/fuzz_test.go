package deliver

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

// keyError is the only shape a secret's error may have: the decoder's
// byte offset, never any of the secret's characters.
var keyError = regexp.MustCompile(`^` + regexp.QuoteMeta(ErrBadSecret.Error()) + `: illegal base64 data at input byte \d+$`)

// FuzzKey: Key accepts exactly the secrets the official library accepts,
// its errors never echo the secret, and whatever it signs with verifies with
// the official library.
func FuzzKey(f *testing.F) {
	for _, s := range []string{secretOld, secretNew, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "", "whsec_not base64!",
		"whsec_whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "whsec_YQ", "whsec_YQ==\n",
		"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_-_-_"} {
		f.Add(s, []byte(`{"type":"order.status_changed"}`))
	}
	f.Fuzz(func(t *testing.T, secret string, body []byte) {
		key, err := Key(config.Secret(secret))
		lib, libErr := standardwebhooks.NewWebhook(secret)
		if (err == nil) != (libErr == nil) {
			t.Fatalf("Key(%q) error %v, official library %v", secret, err, libErr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadSecret) || !keyError.MatchString(err.Error()) {
				t.Fatalf("Key(%q) error %q", secret, err)
			}
			return
		}
		ts := time.Now().Unix()
		h := http.Header{}
		h.Set(HeaderID, "ghana-7044")
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, Sign([][]byte{key}, "ghana-7044", ts, body))
		if err := lib.Verify(body, h); err != nil {
			t.Fatalf("official library rejects the signature for %q: %v", secret, err)
		}
	})
}
