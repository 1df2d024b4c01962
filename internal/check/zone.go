package check

import (
	"context"
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// accountZone reads the account's time zone (GET /api/v5/settings) and
// compares it with time_zone, returning what the line says of it. Without
// time_zone, a zone that cannot be read fails the account: the daemon
// would run without it (see the poll package's zone rules). With
// time_zone, a zone that differs fails it.
func accountZone(ctx context.Context, c *retailcrm.Client, a config.Account, now time.Time) (string, error) {
	s, err := c.Settings(ctx)
	var loc *time.Location
	if err == nil {
		loc, err = s.Location()
	}
	switch {
	case err != nil && a.TimeZone == nil:
		return "", fmt.Errorf("%w: %w; set time_zone to the account's zone", ErrZoneUnknown, err)
	case err != nil:
		return fmt.Sprintf("time zone: %s (time_zone; the account's cannot be read: %v)", a.TimeZone, err), nil
	case a.TimeZone == nil:
		return fmt.Sprintf("time zone: %s (the account's)", loc), nil
	case !sameZone(a.TimeZone, loc, now):
		return "", fmt.Errorf("%w: time_zone %s, the account's zone %s (GET /api/v5/settings); remove time_zone or set it to %s",
			ErrZoneMismatch, a.TimeZone, loc, loc)
	}
	return fmt.Sprintf("time zone: %s (time_zone, the account's too)", a.TimeZone), nil
}

// sameZone reports whether two zones keep the same clock: the same name,
// or (for aliases such as Europe/Kiev and Europe/Kyiv) the same offsets
// through the next two years.
func sameZone(a, b *time.Location, now time.Time) bool {
	if a.String() == b.String() {
		return true
	}
	for d := 0; d < 2*365; d += 5 {
		t := now.AddDate(0, 0, d)
		_, ao := t.In(a).Zone()
		_, bo := t.In(b).Zone()
		if ao != bo {
			return false
		}
	}
	return true
}
