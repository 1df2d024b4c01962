package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"go.yaml.in/yaml/v3"
)

// -update rewrites the golden files of this package's tests.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updateGolden() bool { return flag.Lookup("update").Value.String() == "true" }

// TestConfigPrint: `poller config print` shows the effective config as
// YAML (defaults filled in, per account and per webhook), with every
// secret, key file's content and header value as REDACTED, and URLs as
// written.
func TestConfigPrint(t *testing.T) {
	const key, token, smtpPass = "gh4na-api-key-0123456789", "t0ken-0f-hook", "smtp-passw0rd"
	secret := "whsec_" + "c2VjcmV0LW9mLXRoZS13ZWJob29rLTAxMjM0NTY3"
	t.Setenv("GHANA_API_KEY", key)
	t.Setenv("HOOK_TOKEN", token)
	t.Setenv("SMTP_PASSWORD", smtpPass)
	t.Setenv("WEBHOOK_SECRET", secret)
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("RUNTIME_DIRECTORY", "")
	var out, errb bytes.Buffer
	if code := run([]string{"config", "print", "-config", "testdata/print.yaml"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	golden := filepath.Join("testdata", "print.golden.yaml")
	if updateGolden() {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("config print differs from %s (go test -run TestConfigPrint -update rewrites it):\n%s", golden, out.String())
	}
	for _, s := range []string{key, token, smtpPass, secret, "k3nya-api-key"} {
		if strings.Contains(out.String(), s) {
			t.Errorf("config print shows the secret %q", s)
		}
	}
	// Every key of the file format is printed, except defaults (merged
	// into each account) and the *_file variants, whose content prints
	// under the key they stand for.
	var printed map[string]any
	if err := yaml.Unmarshal(out.Bytes(), &printed); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				keys[k] = true
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(printed)
	for _, k := range configKeys(t) {
		if !keys[k] && !strings.HasSuffix(k, "_file") && k != "defaults" {
			t.Errorf("config print never prints the key %q", k)
		}
	}
}

// configKeys lists the file's keys from the JSON Schema, which is
// generated from the same structs as the decoder.
func configKeys(t *testing.T) []string {
	t.Helper()
	b, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for k := range props {
					out = append(out, k)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if len(out) < 30 {
		t.Fatalf("only %d keys in the schema", len(out))
	}
	return out
}

// A config that does not load is reported like check reports it.
func TestConfigPrintInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte("accounts: []\nlisten: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"config", "print", "-config", path}, &out, &errb)
	var checkOut, checkErr bytes.Buffer
	checkCode := run([]string{"check", "-config", path}, &checkOut, &checkErr)
	if code != checkCode || code == exitOK || out.Len() != 0 || errb.String() != checkErr.String() {
		t.Errorf("config print of a broken file: exit %d, stdout %q, stderr %q; check: exit %d, stderr %q", code, out.String(), errb.String(), checkCode, checkErr.String())
	}
	if code := run([]string{"config", "print"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "-config is required") {
		t.Errorf("config print without -config: exit %d, %q", code, errb.String())
	}
}
