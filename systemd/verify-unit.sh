#!/usr/bin/env bash
# Checks systemd/retailcrm-poller.service: `systemd-analyze verify` passes,
# also with its commented-out LoadCredential= examples enabled,
# `systemd-analyze security --offline=true` rates its exposure 2.0 or lower,
# and RestartPreventExitStatus= keeps down an invalid config (78) but never
# a crash (Go's runtime exits 2 on a panic); the same for the backup
# service, with its timer verified beside it.
# verify needs the ExecStart binary to exist, so the unit is checked as a copy
# pointing at a freshly built poller. Used by .ci/run and `make verify-unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
max=${MAX_EXPOSURE:-2.0}
unit=systemd/retailcrm-poller.service
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

prevent=" $(sed -n 's/^RestartPreventExitStatus=//p' "$unit") "
if [[ $prevent != *" 78 "* || $prevent == *" 2 "* ]]; then
	echo "$unit: RestartPreventExitStatus=$(xargs <<<"$prevent") must list 78 and not 2" >&2
	exit 1
fi
echo "RestartPreventExitStatus=$(xargs <<<"$prevent"): a crash (2) is restarted"

go build -o "$tmp/poller" ./cmd/poller
sed "s#/usr/bin/poller#$tmp/poller#g" "$unit" >"$tmp/retailcrm-poller.service"

echo "systemd-analyze verify $unit"
systemd-analyze verify "$tmp/retailcrm-poller.service"

# The credential examples must stay valid lines once uncommented.
mkdir "$tmp/creds"
grep -q '^#LoadCredential=' "$tmp/retailcrm-poller.service"
sed 's/^#LoadCredential=/LoadCredential=/' "$tmp/retailcrm-poller.service" >"$tmp/creds/retailcrm-poller.service"
echo "systemd-analyze verify $unit (LoadCredential= examples enabled)"
systemd-analyze verify "$tmp/creds/retailcrm-poller.service"

# exposure UNIT: fails when systemd-analyze security rates UNIT above $max.
exposure() {
	local out line score
	out=$(systemd-analyze security --offline=true --no-pager "$1")
	line=$(grep -E 'Overall exposure level' <<<"$out" || true)
	score=$(sed -E 's/.*: ([0-9]+\.[0-9]+) .*/\1/' <<<"$line")
	if ! [[ $score =~ ^[0-9]+\.[0-9]+$ ]]; then
		echo "could not read the exposure level from systemd-analyze security:" >&2
		echo "$out" >&2
		exit 1
	fi
	echo "systemd-analyze security $(basename "$1"): exposure $score (limit $max)"
	if ! awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }'; then
		grep -E '✗' <<<"$out" >&2 || true
		echo "exposure $score is above $max" >&2
		exit 1
	fi
}
exposure "$tmp/retailcrm-poller.service"

# The backup service and its timer (the timer names the service: verified
# together, from one directory).
mkdir "$tmp/backup"
for f in retailcrm-poller-backup.service retailcrm-poller-backup.timer; do
	sed "s#/usr/bin/poller#$tmp/poller#g" "systemd/$f" >"$tmp/backup/$f"
done
echo "systemd-analyze verify systemd/retailcrm-poller-backup.{service,timer}"
(cd "$tmp/backup" && systemd-analyze verify retailcrm-poller-backup.service retailcrm-poller-backup.timer)
exposure "$tmp/backup/retailcrm-poller-backup.service"
