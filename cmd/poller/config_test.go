package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

func TestConfigCommand(t *testing.T) {
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // substrings
	}{
		{[]string{"config", "schema"}, exitOK, `"$schema": "https://json-schema.org/draft/2020-12/schema"`, ""},
		{[]string{"config"}, exitUsage, "", "missing subcommand (want schema or print)"},
		{[]string{"config", "scheme"}, exitUsage, "", `unknown config command "scheme" (want schema or print)`},
		{[]string{"config", "schema", "extra"}, exitUsage, "", "unexpected arguments after schema"},
		{[]string{"config", "-h"}, exitOK, "", "Usage: poller config schema | print -config FILE"},
		{[]string{"config", "print", "-h"}, exitOK, "", "Usage: poller config print -config FILE"},
		{[]string{"help"}, exitOK, "poller config schema", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Errorf("exit %d, want %d\nstderr: %s", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stdout %q\nstderr %q\nwant %q and %q", out.String(), errb.String(), tt.stdout, tt.stderr)
			}
		})
	}
	// The command prints exactly the schema, as JSON.
	var out bytes.Buffer
	run([]string{"config", "schema"}, &out, &out)
	want, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if !bytes.Equal(out.Bytes(), want) || json.Unmarshal(out.Bytes(), &doc) != nil {
		t.Errorf("poller config schema printed something else than config.Schema():\n%.300s", out.String())
	}
}

// TestCheckMessages: `poller check` run from a shell on a config with a
// secret in a bad URL, or a systemd credential: exit 78, a message that
// names the key and says what to do, and no secret.
func TestCheckMessages(t *testing.T) {
	const key, token = "api-k3y-0f-ghana", "t0ken-0f-receiver"
	t.Setenv("GHANA_API_KEY", key)
	t.Setenv("HOOK_TOKEN", token)
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	os.Unsetenv("CREDENTIALS_DIRECTORY") // as in a login shell; t.Setenv restores it
	dir := t.TempDir()
	tests := []struct {
		name, config string
		want         []string
	}{
		{"secrets in bad URLs", `accounts:
  - name: ghana
    url: https://aff-gh.retailcrm.ru/?apiKey=${GHANA_API_KEY}
    api_key: ${GHANA_API_KEY}
    webhooks:
      - url: ftp://hooks.example.com/${HOOK_TOKEN}
`, []string{
			`:3: accounts[0].url: must not have a query, fragment or user info, got "https://aff-gh.retailcrm.ru/?apiKey=${GHANA_API_KEY}"`,
			`:6: accounts[0].webhooks[0].url: must be an http or https URL, got "ftp://hooks.example.com/${HOOK_TOKEN}"`,
		}},
		{"credential from a shell", `accounts:
  - name: ghana
    url: https://aff-gh.retailcrm.ru
    api_key_file: ${CREDENTIALS_DIRECTORY}/ghana.key
    webhooks: [{url: https://app.example.com/hook}]
`, []string{
			":4: accounts[0].api_key_file: environment variable CREDENTIALS_DIRECTORY is not set (in ${CREDENTIALS_DIRECTORY}/ghana.key): " +
				"systemd sets CREDENTIALS_DIRECTORY only inside the service",
			"systemd-run -P --wait -p LoadCredential=ghana.key:PATH poller check -config ",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			if code := run([]string{"check", "-config", path}, &out, &errb); code != exitConfig {
				t.Errorf("exit %d, want %d", code, exitConfig)
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			if all := out.String() + errb.String(); strings.Contains(all, key) || strings.Contains(all, token) {
				t.Errorf("a secret is printed:\n%s", all)
			}
		})
	}
}
