package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestWebhookNames: a webhook's name is its identity (the key of its queue
// in the state file), so several webhooks of one account each need one; a
// lone webhook keeps the implicit "1" that existing state files use.
func TestWebhookNames(t *testing.T) {
	tests := []struct {
		name, src, want string
		names           []string
	}{
		{"lone unnamed", minimal, "", []string{"1"}},
		{"lone named", strings.Replace(minimal, "      - url:", "      - name: app\n        url:", 1), "", []string{"app"}},
		{"two named", minimal + "        name: a\n      - {name: b, url: 'https://b.example.com'}\n", "", []string{"a", "b"}},
		{"two unnamed", minimal + "      - url: https://b.example.com\n",
			"c.yaml:7: accounts[0].webhooks[0].name: required when an account has more than one webhook (the name keys its queue of events)\n" +
				"c.yaml:8: accounts[0].webhooks[1].name: required when an account has more than one webhook (the name keys its queue of events)", nil},
		{"one of two unnamed", minimal + "      - {name: b, url: 'https://b.example.com'}\n",
			"c.yaml:7: accounts[0].webhooks[0].name: required when an account has more than one webhook (the name keys its queue of events)", nil},
		{"duplicate", minimal + "        name: a\n      - {name: a, url: 'https://b.example.com'}\n",
			`c.yaml:9: accounts[0].webhooks[1].name: duplicate webhook name "a" (first at line 8)`, nil},
		{"several in defaults, reported once", "defaults:\n  webhooks:\n    - url: https://a.example.com\n    - url: https://b.example.com\n" +
			"accounts:\n  - {name: a, url: 'https://x', api_key: k}\n  - {name: b, url: 'https://x', api_key: k}\n",
			"c.yaml:3: defaults.webhooks[0].name: required when an account has more than one webhook (the name keys its queue of events)\n" +
				"c.yaml:4: defaults.webhooks[1].name: required when an account has more than one webhook (the name keys its queue of events)", nil},
		{"lone one in defaults", "defaults:\n  webhooks:\n    - url: https://a.example.com\naccounts:\n  - {name: a, url: 'https://x', api_key: k}\n", "", []string{"1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tt.src), env(nil))
			if fmt.Sprint(err) != tt.want && !(err == nil && tt.want == "") {
				t.Fatalf("error:\n%v\nwant:\n%s", err, tt.want)
			}
			if err != nil {
				return
			}
			var got []string
			for _, w := range cfg.Accounts[0].Webhooks {
				got = append(got, w.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.names) {
				t.Errorf("names %v, want %v", got, tt.names)
			}
		})
	}
}

// TestLookBackAndReconcile: look_back counts entries (>= 0), look_back_time
// covers two polls at least (default: 2m or two intervals), reconcile.every
// may be 0 (off) and reconcile.window must be positive. want is the exact
// error, "" for a config that loads.
func TestLookBackAndReconcile(t *testing.T) {
	tests := []struct {
		name, extra, defaults string
		want                  string
		lookBackTime          time.Duration
		reconcile             Reconcile
	}{
		{"defaults", "", "", "", 2 * time.Minute, Reconcile{10 * time.Minute, 24 * time.Hour}},
		{"two intervals exactly", "look_back_time: 2m", "", "", 2 * time.Minute, Reconcile{10 * time.Minute, 24 * time.Hour}},
		{"default follows a slow schedule", "schedule: '*/5 * * * *'", "", "", 10 * time.Minute, Reconcile{10 * time.Minute, 24 * time.Hour}},
		{"default over a weekend", "schedule: '0 9 * * 1-5'", "", "", 144 * time.Hour, Reconcile{10 * time.Minute, 24 * time.Hour}},
		{"sweep off", "reconcile: {every: 0}", "", "", 2 * time.Minute, Reconcile{0, 24 * time.Hour}},
		{"sweep off, 0s", "reconcile: {every: 0s, window: 1h}", "", "", 2 * time.Minute, Reconcile{0, time.Hour}},
		{"look_back 0", "look_back: 0", "", "", 2 * time.Minute, Reconcile{10 * time.Minute, 24 * time.Hour}},
		{"too short", "look_back_time: 90s", "",
			`c.yaml:6: accounts[0].look_back_time: must be at least two intervals of the schedule "@every 1m" (2 × 1m0s = 2m0s), got 90s`, 0, Reconcile{}},
		{"too short for the account's schedule", "schedule: '*/10 * * * *'\n    look_back_time: 15m", "",
			`c.yaml:7: accounts[0].look_back_time: must be at least two intervals of the schedule "*/10 * * * *" (2 × 10m0s = 20m0s), got 15m`, 0, Reconcile{}},
		{"too short, set in defaults", "", "defaults: {schedule: '@every 2m', look_back_time: 3m}\n",
			`c.yaml:1: defaults.look_back_time: must be at least two intervals of the schedule "@every 2m" (2 × 2m0s = 4m0s), got 3m`, 0, Reconcile{}},
		{"negative look_back", "look_back: -1", "", "c.yaml:6: accounts[0].look_back: must not be negative, got -1", 0, Reconcile{}},
		{"negative look_back_time", "look_back_time: -5m", "", "c.yaml:6: accounts[0].look_back_time: must be positive, got -5m", 0, Reconcile{}},
		{"negative every", "reconcile: {every: -1m}", "", "c.yaml:6: accounts[0].reconcile.every: must not be negative, got -1m", 0, Reconcile{}},
		{"zero window", "reconcile: {window: 0s}", "", "c.yaml:6: accounts[0].reconcile.window: must be positive, got 0s", 0, Reconcile{}},
		{"bad window", "reconcile: {window: a day}", "", `c.yaml:6: accounts[0].reconcile.window: bad duration "a day" (want e.g. 10s, 2m, 72h)`, 0, Reconcile{}},
		{"never fires", "schedule: '0 0 31 2 *'", "", `c.yaml:6: accounts[0].schedule: cron spec "0 0 31 2 *" never fires`, 0, Reconcile{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.defaults + strings.Replace(minimal, "    webhooks:", "    "+tt.extra+"\n    webhooks:", 1)
			if tt.defaults != "" {
				src = strings.Replace(src, "\n\n", "\n", 1)
			}
			cfg, err := Parse("c.yaml", []byte(src), env(nil))
			if tt.want != "" {
				if fmt.Sprint(err) != tt.want {
					t.Errorf("error:\n%v\nwant:\n%s\nconfig:\n%s", err, tt.want, src)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\nconfig:\n%s", err, src)
			}
			a := cfg.Accounts[0]
			if a.LookBackTime != tt.lookBackTime || a.Reconcile != tt.reconcile {
				t.Errorf("look_back_time %v reconcile %+v, want %v %+v", a.LookBackTime, a.Reconcile, tt.lookBackTime, tt.reconcile)
			}
		})
	}
}
