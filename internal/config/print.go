package config

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The printed forms mirror the file's keys, in the order raw.go lists
// them, so an operator can hold the output against the file.
type (
	printConfig struct {
		StateDir        string         `yaml:"state_dir"`
		Listen          string         `yaml:"listen"`
		AdminSocket     string         `yaml:"admin_socket"`
		ShutdownTimeout string         `yaml:"shutdown_timeout"`
		Log             printLog       `yaml:"log"`
		Alerts          printAlerts    `yaml:"alerts"`
		Accounts        []printAccount `yaml:"accounts"`
	}
	printLog struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	}
	printAlerts struct {
		Email *printEmail `yaml:"email,omitempty"`
	}
	printEmail struct {
		SMTP     string   `yaml:"smtp"`
		Username string   `yaml:"username"`
		Password string   `yaml:"password"`
		From     string   `yaml:"from"`
		To       []string `yaml:"to"`
		StartTLS bool     `yaml:"starttls"`
	}
	printAccount struct {
		Name           string         `yaml:"name"`
		URL            string         `yaml:"url"`
		APIKey         string         `yaml:"api_key"`
		Statuses       []string       `yaml:"statuses"`
		Sites          []string       `yaml:"sites"`
		Schedule       string         `yaml:"schedule"`
		StartFrom      string         `yaml:"start_from"`
		OnCreate       bool           `yaml:"on_create"`
		SkipOwnChanges bool           `yaml:"skip_own_changes"`
		RateLimit      float64        `yaml:"rate_limit"`
		CAFile         string         `yaml:"ca_file,omitempty"`
		LookBack       int            `yaml:"look_back"`
		LookBackTime   string         `yaml:"look_back_time"`
		PageBudget     int            `yaml:"page_budget"`
		Timeout        string         `yaml:"timeout"`
		TimeZone       string         `yaml:"time_zone,omitempty"`
		Reconcile      printReconcile `yaml:"reconcile"`
		Webhooks       []printWebhook `yaml:"webhooks"`
	}
	printReconcile struct {
		Every  string `yaml:"every"`
		Window string `yaml:"window"`
	}
	printWebhook struct {
		Name        string     `yaml:"name"`
		URL         string     `yaml:"url"`
		Method      string     `yaml:"method"`
		Format      string     `yaml:"format"`
		Params      *yaml.Node `yaml:"params,omitempty"`
		Body        string     `yaml:"body,omitempty"`
		Headers     *yaml.Node `yaml:"headers,omitempty"`
		Secret      string     `yaml:"secret,omitempty"`
		Timeout     string     `yaml:"timeout"`
		SuccessBody string     `yaml:"success_body"`
		Retry       printRetry `yaml:"retry"`
		Concurrency int        `yaml:"concurrency"`
		When        string     `yaml:"when,omitempty"`
	}
	printRetry struct {
		MaxAttempts int    `yaml:"max_attempts"`
		MaxAge      string `yaml:"max_age"`
	}
)

// Effective renders c as YAML with the file's keys: every default filled
// in, durations in Go's notation, URLs as written (${VAR} unexpanded, as
// messages quote them), and every secret, header value and key file's
// content as REDACTED. It is what `poller config print` shows.
func (c *Config) Effective() ([]byte, error) {
	p := printConfig{
		StateDir:        c.StateDir,
		Listen:          c.Listen,
		AdminSocket:     c.AdminSocket,
		ShutdownTimeout: printDuration(c.ShutdownTimeout),
		Log:             printLog{Level: strings.ToLower(c.Log.Level.String()), Format: c.Log.Format},
	}
	if e := c.Alerts.Email; e != nil {
		p.Alerts.Email = &printEmail{SMTP: e.SMTP, Username: e.Username, Password: printSecret(e.Password), From: e.From, To: e.To, StartTLS: e.StartTLS}
	}
	for _, a := range c.Accounts {
		pa := printAccount{
			Name: a.Name, URL: a.URLAsWritten, APIKey: printSecret(a.APIKey),
			Statuses: a.Statuses, Sites: a.Sites, Schedule: a.Schedule, StartFrom: a.StartFrom,
			OnCreate: a.OnCreate, SkipOwnChanges: a.SkipOwnChanges, RateLimit: a.RateLimit,
			CAFile: a.CAFile, LookBack: a.LookBack, LookBackTime: printDuration(a.LookBackTime), PageBudget: a.PageBudget,
			Timeout:   printDuration(a.Timeout),
			Reconcile: printReconcile{Every: printDuration(a.Reconcile.Every), Window: printDuration(a.Reconcile.Window)},
		}
		if a.TimeZone != nil {
			pa.TimeZone = a.TimeZone.String()
		}
		if pa.Sites == nil {
			pa.Sites = []string{}
		}
		for _, w := range a.Webhooks {
			pw := printWebhook{
				Name: w.Name, URL: w.URLAsWritten, Method: w.Method, Format: w.Format,
				Timeout: printDuration(w.Timeout), SuccessBody: w.SuccessBody, Concurrency: w.Concurrency,
				Retry: printRetry{MaxAttempts: w.Retry.MaxAttempts, MaxAge: printDuration(w.Retry.MaxAge)},
			}
			if w.When != nil {
				pw.When = w.When.String()
			}
			if w.Body != nil {
				pw.Body = w.Body.Source()
			}
			if len(w.Params) > 0 {
				pw.Params = &yaml.Node{Kind: yaml.MappingNode}
				for _, pr := range w.Params {
					pw.Params.Content = append(pw.Params.Content, scalar(pr.Name), scalar(pr.Value.Source()))
				}
			}
			if len(w.Headers) > 0 {
				pw.Headers = &yaml.Node{Kind: yaml.MappingNode}
				for _, n := range slices.Sorted(maps.Keys(w.Headers)) {
					pw.Headers.Content = append(pw.Headers.Content, scalar(n), scalar(redacted))
				}
			}
			if len(w.Secrets) > 0 {
				pw.Secret = redacted
			}
			pa.Webhooks = append(pa.Webhooks, pw)
		}
		p.Accounts = append(p.Accounts, pa)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("config: print: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: print: %w", err)
	}
	return b.Bytes(), nil
}

// printSecret is REDACTED for a secret that is set, "" for none.
func printSecret(s Secret) string {
	if s == "" {
		return ""
	}
	return redacted
}

// printDuration writes d as the file would: 10m, not 10m0s.
func printDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}
