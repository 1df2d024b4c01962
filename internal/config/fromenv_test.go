package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestFromEnv: the values written with ${VAR} are listed by account,
// webhook and key; values from a *_file or written plainly are not.
func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ghana.key"), []byte("file-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GHANA_KEY": "k-1", "HOOK_SECRET": "whsec_c2VjcmV0c2VjcmV0", "TOKEN": "t-1", "HOST": "aff-gh.retailcrm.ru"}
	yaml := `accounts:
  - name: ghana
    url: https://${HOST}
    api_key: ${GHANA_KEY}
    webhooks:
      - name: app
        url: https://app.example.com/hooks/${TOKEN}
        secret: ${HOOK_SECRET}
        headers:
          Authorization: Bearer ${TOKEN}-${TOKEN}
          X-Plain: plain
      - name: plain
        url: https://app.example.com/plain
  - name: filed
    url: https://filed.retailcrm.ru
    api_key_file: ghana.key
    webhooks:
      - url: https://app.example.com/filed
`
	cfg, err := Parse(filepath.Join(dir, "poller.yaml"), []byte(yaml), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []FromEnv{
		{Account: "ghana", Key: "api_key", Vars: []string{"GHANA_KEY"}},
		{Account: "ghana", Key: "url", Vars: []string{"HOST"}},
		{Account: "ghana", Webhook: "app", Key: "url", Vars: []string{"TOKEN"}},
		{Account: "ghana", Webhook: "app", Key: "secret", Vars: []string{"HOOK_SECRET"}},
		{Account: "ghana", Webhook: "app", Key: "headers.Authorization", Vars: []string{"TOKEN"}},
	}
	if !reflect.DeepEqual(cfg.FromEnv, want) {
		t.Errorf("FromEnv:\n got %+v\nwant %+v", cfg.FromEnv, want)
	}
}
