// Package zzdeps pins dependencies while the packages that use them are written. Removed before landing.
package zzdeps

import (
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/coreos/go-systemd/v22/journal"
	_ "github.com/emersion/go-smtp"
	_ "github.com/go-resty/resty/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/robfig/cron/v3"
	_ "github.com/standard-webhooks/standard-webhooks/libraries/go"
	_ "go.etcd.io/bbolt"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/time/rate"
	_ "golang.org/x/net/netutil"
)
