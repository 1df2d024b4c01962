// Package config loads the poller's YAML configuration: strict decoding
// (unknown or duplicate keys are errors), ${VAR} expansion, secrets from
// files, a defaults: block merged into every account, built-in defaults and
// validation of every field. Every error names the file, line and key, and
// all of them are reported at once, so one `poller check` shows everything
// that is wrong. Messages quote values as written (${VAR} unexpanded), so
// they never show a secret; aliases that would expand a small file into a
// huge one are refused before decoding. Schema describes the same keys as
// a JSON Schema.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Reasons a secret file is refused.
var (
	errNotRegular = errors.New("not a regular file")
)

// Error is one problem in a config file. Parse and Load return them joined
// with errors.Join, sorted by line; find them with errors.As.
type Error struct {
	File string
	Line int    // 1-based; 0 when the problem has no line (e.g. unreadable file)
	Key  string // path of the key, e.g. accounts[0].webhooks[1].url; "" for syntax errors
	Msg  string
}

// Error formats "FILE:LINE: KEY: MSG", leaving out the parts that are empty.
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		s += ": " + e.Key
	}
	return s + ": " + e.Msg
}

// maxFileSize bounds a config file: far above any real one (10,000
// accounts take about 2 MiB), far below what would exhaust memory.
const maxFileSize = 32 << 20

// Load reads the config file at path, expanding ${VAR} from the process
// environment. The same file and environment give the same Config.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPath(err))}
	}
	defer f.Close()
	// One byte more than allowed tells an oversized file (or endless
	// stream) apart without reading all of it.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPath(err))}
	}
	return Parse(path, data, os.LookupEnv)
}

// yamlLine pulls the line out of yaml's "yaml: line N: msg" errors.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

func splitYAMLError(err error) (line int, msg string) {
	msg = err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	return line, msg
}

// maxProblemScan bounds problemLine's quadratic scan.
const maxProblemScan = 2000

// problemLine finds the line a syntax error is on. yaml.v3 reports the line
// where the enclosing block starts, which can be far above the mistake, so
// parse growing prefixes of the file: the first one to fail with the same
// message ends on the offending line. 0 if none does.
func problemLine(data []byte, msg string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxProblemScan {
		return 0
	}
	end := 0
	for i, l := range lines {
		end += len(l)
		var n yaml.Node
		if err := yaml.Unmarshal(data[:end], &n); err != nil {
			if _, m := splitYAMLError(err); m == msg {
				return i + 1
			}
		}
	}
	return 0
}

// Parse decodes, defaults and validates a config. path names the file in
// errors and is the base for relative *_file paths; lookupEnv resolves
// ${VAR}. It never returns both a Config and an error.
func Parse(path string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if len(data) > maxFileSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("larger than %d MiB, the limit for a config file", maxFileSize>>20)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := splitYAMLError(err)
		if l := problemLine(data, msg); l > 0 {
			line = l
		}
		return nil, &Error{File: path, Line: line, Msg: msg}
	}
	if err := checkAliases(path, &doc); err != nil {
		return nil, err
	}
	d := &decoder{file: path, data: data, env: lookupEnv}
	var raw rawConfig
	if len(doc.Content) > 0 {
		d.value(reflect.ValueOf(&raw).Elem(), doc.Content[0], "")
	}
	applyDefaults(&raw, lookupEnv)
	b := &builder{decoder: d, dir: filepath.Dir(path)}
	cfg := b.config(&raw)
	if err := joinErrors(d.errs); err != nil {
		return nil, err
	}
	cfg.FromEnv = fromEnv(&raw, cfg)
	cfg.Warnings = b.warnings
	return cfg, nil
}

// joinErrors sorts errors by line and drops repeats (a bad value in
// defaults: is found once per account that inherits it).
func joinErrors(errs []*Error) error {
	slices.SortStableFunc(errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	seen := map[Error]bool{}
	var out []error
	for _, e := range errs {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// Account returns the account with the given name.
func (c *Config) Account(name string) (*Account, bool) {
	for i := range c.Accounts {
		if c.Accounts[i].Name == name {
			return &c.Accounts[i], true
		}
	}
	return nil, false
}
