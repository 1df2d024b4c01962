package receiver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// TestReceiver checks the signature verification and the record.
func TestReceiver(t *testing.T) {
	secret := NewSecret()
	rc := New()
	if err := rc.Secure("/s", secret); err != nil {
		t.Fatal(err)
	}
	var seen []string
	rc.OnDelivery = func(d Delivery) { seen = append(seen, d.ID) }
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	send := func(path, id string, sign bool) int {
		req := testkit.SignedRequest(t, srv.URL+path, secret, id, sign)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "OK" {
			t.Errorf("%s: body %q", id, b)
		}
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, id string
		sign     bool
	}{{"/s", "ok", true}, {"/s", "badsig", false}, {"/open", "unsigned", false}, {"/s", "ok", true}} {
		if code := send(c.path, c.id, c.sign); code != http.StatusOK {
			t.Errorf("%s: code %d", c.id, code)
		}
	}
	if counts := rc.Counts("/s"); counts["ok"] != 2 || counts["badsig"] != 1 || len(counts) != 2 {
		t.Errorf("counts %v", counts)
	}
	if counts := rc.Counts(""); len(counts) != 3 {
		t.Errorf("counts of every path %v", counts)
	}
	for _, d := range rc.Deliveries() {
		if want := d.ID != "badsig"; d.SignatureOK != want {
			t.Errorf("%s: SignatureOK = %v (%s), want %v", d.ID, d.SignatureOK, d.SignatureErr, want)
		}
	}
	if len(seen) != 4 {
		t.Errorf("OnDelivery saw %v", seen)
	}
}
