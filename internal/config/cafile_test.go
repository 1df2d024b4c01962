package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// TestCAFile: ca_file is read relative to the config, per account or from
// defaults, and a file that is not a bundle of certificates is an error
// naming the file, line and key.
func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chain := testkit.NewTLSChain(t, "*.crm.test")
	write("ca.pem", chain.CAPEM)
	write("bundle.pem", append(append([]byte{}, chain.CAPEM...), chain.CertPEM...))
	write("key.pem", append(append([]byte{}, chain.CAPEM...), chain.KeyPEM...))
	write("text.pem", []byte("not PEM at all\n"))
	write("bad.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	tests := []struct {
		name, where, path, want string
	}{
		{"account", "account", "ca.pem", ""},
		{"defaults", "defaults", "ca.pem", ""},
		{"bundle", "account", "bundle.pem", ""},
		{"a key in it", "account", "key.pem", `key.pem holds a PEM block of type "PRIVATE KEY"; want only CERTIFICATE blocks`},
		{"no PEM", "account", "text.pem", "text.pem holds no PEM certificate"},
		{"bad certificate", "account", "bad.pem", "bad.pem: certificate 1 does not parse"},
		{"missing", "account", "nope.pem", "cannot read " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, key := strings.Replace(minimal, "api_key: key", "api_key: key\n    ca_file: "+tt.path, 1), "6: accounts[0].ca_file"
			if tt.where == "defaults" {
				src, key = "defaults:\n  ca_file: "+tt.path+minimal, "2: defaults.ca_file"
			}
			cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(nil))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if a := cfg.Accounts[0]; !bytes.HasPrefix(a.CA, chain.CAPEM) || a.CAFile != tt.path {
					t.Errorf("CA %d bytes from %q, want %s's", len(a.CA), a.CAFile, tt.path)
				}
				return
			}
			want := filepath.Join(dir, "c.yaml") + ":" + key + ": "
			if got := fmt.Sprint(err); !strings.HasPrefix(got, want) || !strings.Contains(got, tt.want) {
				t.Errorf("error %v, want %s...%s", err, want, tt.want)
			}
		})
	}
}

// TestCAFileReadOncePerLoad: the accounts that inherit ca_file share its
// bytes (at 10,000 accounts a copy each was 12 MB of the daemon's heap).
func TestCAFileReadOncePerLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), testkit.NewTLSChain(t, "*.crm.test").CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	src := "defaults:\n  ca_file: ca.pem" + minimal + strings.Replace(strings.TrimPrefix(minimal, "\naccounts:\n"), "ghana", "togo", 1)
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Accounts[0].CA, cfg.Accounts[1].CA
	if len(a) == 0 || &a[0] != &b[0] {
		t.Errorf("the two accounts hold separate copies of ca_file (%d and %d bytes)", len(a), len(b))
	}
}
