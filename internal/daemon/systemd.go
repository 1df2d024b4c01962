package daemon

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

const (
	sdReady    = sd.SdNotifyReady
	sdStopping = sd.SdNotifyStopping
)

// sdReloading is RELOADING=1 with the MONOTONIC_USEC that Type=notify-reload
// units require.
func sdReloading() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return sd.SdNotifyReloading
	}
	return sd.SdNotifyReloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
}

// notify sends state to systemd; without NOTIFY_SOCKET it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("systemd notify failed", "error", err)
	}
}

// watchdog pings systemd's watchdog at half its interval while the store
// answers, so a wedged store gets the service restarted. It returns at
// once when the unit has no WatchdogSec.
func (d *daemon) watchdog(ctx context.Context) {
	every, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		d.log.Warn("systemd watchdog settings", "error", err)
		return
	}
	if every == 0 {
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.st.Ping(); err != nil {
				d.log.Error("store does not answer; withholding the watchdog ping", "error", err)
				continue
			}
			notify(d.log, sd.SdNotifyWatchdog)
		}
	}
}
