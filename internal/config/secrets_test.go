package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCredentialsDirectory: api_key_file: ${CREDENTIALS_DIRECTORY}/ghana.key
// works where systemd sets the variable (LoadCredential=), and from a shell,
// where it does not, the message says which key and file, why, and how to
// check the config anyway.
func TestCredentialsDirectory(t *testing.T) {
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "ghana.key"), []byte("key-from-credential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const hint = "systemd sets CREDENTIALS_DIRECTORY only inside the service, to the directory of the unit's LoadCredential= files " +
		"(here LoadCredential=ghana.key:PATH); from a shell, check with CREDENTIALS_DIRECTORY=DIR poller check -config c.yaml, DIR holding ghana.key, " +
		"or check as the service would: systemd-run -P --wait -p LoadCredential=ghana.key:PATH poller check -config c.yaml"
	dirCreds := t.TempDir() // ghana.key is a directory there
	if err := os.Mkdir(filepath.Join(dirCreds, "ghana.key"), 0o700); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(minimal, "api_key: key", "api_key_file: ${CREDENTIALS_DIRECTORY}/ghana.key", 1)
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"inside the service", map[string]string{"CREDENTIALS_DIRECTORY": creds}, ""},
		{"from a shell", nil, "c.yaml:5: accounts[0].api_key_file: environment variable CREDENTIALS_DIRECTORY is not set (in ${CREDENTIALS_DIRECTORY}/ghana.key): " + hint},
		{"no such credential", map[string]string{"CREDENTIALS_DIRECTORY": t.TempDir()},
			"c.yaml:5: accounts[0].api_key_file: cannot read ${CREDENTIALS_DIRECTORY}/ghana.key: no such file or directory. " + hint},
		{"not a file", map[string]string{"CREDENTIALS_DIRECTORY": dirCreds},
			"c.yaml:5: accounts[0].api_key_file: cannot read ${CREDENTIALS_DIRECTORY}/ghana.key: not a regular file. " + hint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(src), env(tt.env))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := cfg.Accounts[0].APIKey.Reveal(); got != "key-from-credential" {
					t.Errorf("key %q", got)
				}
				return
			}
			if fmt.Sprint(err) != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
			if dir := tt.env["CREDENTIALS_DIRECTORY"]; dir != "" && strings.Contains(fmt.Sprint(err), dir) {
				t.Errorf("the expanded path is printed: %v", err)
			}
		})
	}
}

// TestCredentialsHintID: the hint names the credential when the path is
// ${CREDENTIALS_DIRECTORY}/ID, and a placeholder otherwise.
func TestCredentialsHintID(t *testing.T) {
	tests := map[string]string{
		"${CREDENTIALS_DIRECTORY}/webhook.secret": "LoadCredential=webhook.secret:PATH",
		"${CREDENTIALS_DIRECTORY}/sub/x.key":      "LoadCredential=ID:PATH",
		"${CREDENTIALS_DIRECTORY}":                "LoadCredential=ID:PATH",
	}
	for raw, want := range tests {
		if got := credentialsHint("c.yaml", raw); !strings.Contains(got, want) {
			t.Errorf("credentialsHint(%q) = %q, want it to contain %q", raw, got, want)
		}
	}
}
