package config

import "slices"

// FromEnv is a secret or URL whose value the file takes from environment
// variables (${VAR}) rather than from a *_file. A process reads its
// environment once, at its start, so a reload cannot pick up a new value
// of such a variable: only a restart can (a *_file is read again on each
// reload).
type FromEnv struct {
	Account string   // the account's name
	Webhook string   // the webhook's name; "" for the account's own values
	Key     string   // api_key, url, secret or headers.NAME
	Vars    []string // the variables the value is written with
}

// fromEnv lists cfg's secrets and URLs written with ${VAR}s, walking the
// raw file beside what was built from it: accounts and webhooks are built
// one for one, in order. The e-mail password is left out: the alerts
// section is read at start only anyway.
func fromEnv(raw *rawConfig, cfg *Config) []FromEnv {
	var out []FromEnv
	add := func(account, webhook, key, written string) {
		if vs := vars(written); len(vs) > 0 {
			out = append(out, FromEnv{Account: account, Webhook: webhook, Key: key, Vars: slices.Compact(vs)})
		}
	}
	for i, ra := range raw.Accounts.V {
		r, a := ra.V, cfg.Accounts[i]
		add(a.Name, "", "api_key", r.APIKey.Raw)
		add(a.Name, "", "url", r.URL.Raw)
		for j, rw := range r.Webhooks.V {
			w := a.Webhooks[j]
			add(a.Name, w.Name, "url", rw.V.URL.Raw)
			add(a.Name, w.Name, "secret", rw.V.Secret.Raw)
			for _, h := range rw.V.Headers.V {
				add(a.Name, w.Name, "headers."+h.Name, h.Raw)
			}
		}
	}
	return out
}
