package e2e

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// TestURLTokenNotShown: an account URL with a token in its path, from a
// ${VAR}, whose host refuses connections. The failure reaches the WARN
// log, `poller status` and `poller check -online`, each naming the cause
// and none showing the token (TestMain also checks every line printed).
func TestURLTokenNotShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 63)
	a := e.account("ghana", crmsim.AccountOptions{})
	token := "pt-" + strings.TrimPrefix(receiver.NewSecret(), "whsec_")
	remember(token)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	envv := []string{"E2E_URL_TOKEN=" + token}
	cfg := e.writeConfig("token.yaml", nil, e.acctConfig(a, map[string]any{
		"url": "http://" + refused + "/${E2E_URL_TOKEN}", "webhooks": []any{e.webhook("/h", nil)}}))
	const cause = "connection refused"

	p := e.start(cfg, envv...)
	p.waitLog(`"msg":"poll failed"`, 30*time.Second)
	warn := p.logLines("poll failed")[0]
	if msg, _ := warn["error"].(string); !strings.Contains(msg, refused) || !strings.Contains(msg, cause) || strings.Contains(msg, token) {
		t.Errorf("poll failed: error %q", msg)
	}

	out, errOut, code := cli(t, envv, "status", "-config", cfg, "-json")
	var st []struct {
		Account   string `json:"account"`
		LastError string `json:"last_error"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 {
		t.Fatalf("status: exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(st[0].LastError, cause) || strings.Contains(out, token) {
		t.Errorf("status last_error %q", st[0].LastError)
	}

	out, errOut, code = cli(t, envv, "check", "-config", cfg, "-online")
	if code != 1 || !strings.Contains(out, "FAIL  ghana: ") || !strings.Contains(out+errOut, cause) || strings.Contains(out+errOut, token) {
		t.Errorf("check -online: exit %d:\n%s%s", code, out, errOut)
	}
	if leaked := leakedSecrets(p.logs.String()); len(leaked) > 0 {
		t.Errorf("the daemon printed %d secrets", len(leaked))
	}
}
