#!/bin/sh
# Reload unit files; the service is not enabled or started: it needs
# /etc/retailcrm-poller/config.yaml first (see README, "Configure").
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if systemctl is-active --quiet retailcrm-poller.service; then
		systemctl try-restart retailcrm-poller.service || true
	fi
fi
