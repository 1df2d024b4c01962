package config

import (
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSecretFile bounds what a *_file may hold; a key is a few dozen bytes.
const maxSecretFile = 64 << 10

// credentialsVar is set by systemd, inside the service only, to the
// directory holding the files of the unit's LoadCredential= lines.
const credentialsVar = "CREDENTIALS_DIRECTORY"

// secret resolves a value given inline or as name_file (read, trimmed).
// required: exactly one of the two must be set. Messages name the file as
// written and never show what it holds.
func (b *builder) secret(inline, file field[string], required bool, line int, key string) Secret {
	switch {
	case inline.Set && file.Set:
		bad(b, file, "set only one of %s and %s", lastKey(inline.Key), lastKey(file.Key))
		return ""
	case file.Set:
		p, shown := b.path(file)
		data, err := readSmallFile(p, maxSecretFile)
		if err != nil {
			msg := fmt.Sprintf("cannot read %s: %v", shown, err)
			if strings.Contains(file.Raw, "${"+credentialsVar+"}") {
				msg += ". " + credentialsHint(b.file, file.Raw)
			}
			bad(b, file, "%s", msg)
			return ""
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			bad(b, file, "%s is empty", shown)
		}
		return Secret(v)
	case inline.Set:
		if inline.V == "" && required {
			bad(b, inline, "must not be empty")
		}
		return Secret(inline.V)
	case required:
		b.errorf(line, key, "%s or %s_file is required", lastKey(key), lastKey(key))
	}
	return ""
}

// path resolves a file named in the config: a relative path is read from
// the config's directory. shown is the path as written (${VAR} unexpanded),
// for messages.
func (b *builder) path(file field[string]) (p, shown string) {
	p, shown = file.V, file.Raw
	if p != "" && !filepath.IsAbs(p) {
		p, shown = filepath.Join(b.dir, p), filepath.Join(b.dir, shown)
	}
	return p, shown
}

// credentialsHint explains a ${CREDENTIALS_DIRECTORY} path that does not
// resolve, most often because the config is checked from a shell.
func credentialsHint(configFile, raw string) string {
	id := "ID"
	if rest, ok := strings.CutPrefix(raw, "${"+credentialsVar+"}/"); ok && rest != "" && !strings.Contains(rest, "/") {
		id = rest
	}
	return fmt.Sprintf("systemd sets %s only inside the service, to the directory of the unit's LoadCredential= files "+
		"(here LoadCredential=%s:PATH); from a shell, check with %s=DIR poller check -config %s, DIR holding %s, "+
		"or check as the service would: systemd-run -P --wait -p LoadCredential=%s:PATH poller check -config %s",
		credentialsVar, id, credentialsVar, configFile, path.Base(id), id, configFile)
}

// signingSecrets splits a secret into its space-separated rotation set and
// checks each is a Standard Webhooks key: whsec_ + base64 (the prefix is
// optional). The message never echoes the value.
func (b *builder) signingSecrets(inline, file field[string], s Secret) []Secret {
	at := inline
	if file.Set {
		at = file
	}
	var out []Secret
	for i, v := range strings.Fields(s.Reveal()) {
		// The same parsing as standardwebhooks.NewWebhook, which the
		// deliverer signs with; it would accept an empty key, we do not.
		// The pattern is what the schema says of the key (the same set).
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, "whsec_"))
		if err != nil || len(key) == 0 || !signingKeyPattern.MatchString(v) {
			bad(b, at, "secret %d is not whsec_ followed by a base64 key", i+1)
			continue
		}
		out = append(out, Secret(v))
	}
	return out
}

// readSmallFile reads a regular file of at most limit bytes. A FIFO or
// device (a typo'd /dev/stdin, /dev/zero) would block or never end.
func readSmallFile(p string, limit int64) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, unwrapPath(err)
	}
	return data, nil
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func lastKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}
