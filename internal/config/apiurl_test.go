package config

import (
	"strings"
	"testing"
)

// An account url that ends in RetailCRM's API path is refused with a hint:
// the client adds /api/v5 itself, so every request would answer 404 "API
// method not found". A webhook url may have any path.
func TestAccountURLWithAPIPath(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "CRM_URL" {
			return "https://aff-gh.retailcrm.ru/api/v5", true
		}
		return "", false
	}
	for _, tt := range []struct {
		url, err string
	}{
		{"https://aff-gh.retailcrm.ru", ""},
		{"https://aff-gh.retailcrm.ru/", ""},
		{"https://aff-gh.retailcrm.ru/apiary", ""},
		{"https://aff-gh.retailcrm.ru/api/v5", `c.yaml:3: accounts[0].url: must be the account's address without the API path (the poller adds /api/v5), e.g. https://aff-gh.retailcrm.ru, got "https://aff-gh.retailcrm.ru/api/v5"`},
		{"https://aff-gh.retailcrm.ru/api/v5/", `got "https://aff-gh.retailcrm.ru/api/v5/"`},
		{"https://aff-gh.retailcrm.ru/API/V5", `got "https://aff-gh.retailcrm.ru/API/V5"`},
		{"https://aff-gh.retailcrm.ru/api", `e.g. https://aff-gh.retailcrm.ru, got "https://aff-gh.retailcrm.ru/api"`},
		{"${CRM_URL}", `e.g. https://aff-gh.retailcrm.ru, got "${CRM_URL}"`},
	} {
		t.Run(tt.url, func(t *testing.T) {
			src := "accounts:\n  - name: ghana\n    url: " + tt.url + "\n    api_key: k\n    webhooks: [{url: \"https://app.example.com/api/v5\"}]\n"
			_, err := Parse("c.yaml", []byte(src), env)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error %v, want one containing %s", err, tt.err)
			}
		})
	}
}
