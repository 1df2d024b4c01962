#!/bin/sh
# Stop the service before its binary goes away; state in
# /var/lib/retailcrm-poller is kept.
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl disable --now retailcrm-poller.service || true
fi
