package retailcrm_test

import (
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

func TestAccountOptions(t *testing.T) {
	acct := config.Account{Name: "acme", URL: "https://acme.example", APIKey: "k", RateLimit: 7, Timeout: 3 * time.Second, CA: []byte("pem")}
	o := retailcrm.AccountOptions(acct)
	if o.BaseURL != acct.URL || o.APIKey != "k" || o.RateLimit != 7 || o.Timeout != 3*time.Second || string(o.CA) != "pem" {
		t.Fatalf("options %+v", o)
	}
}
