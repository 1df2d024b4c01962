package poll

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The account's time zone. RetailCRM reads every date filter and writes
// every date (createdAt, generatedAt, statusUpdatedAt) in the zone set in
// the account, which GET /api/v5/settings returns. time_zone in the config
// overrides it (and is then used without asking the account); unset, the
// poller reads the zone at its first poll, again a day later, and when the
// daemon reloads its config.
//
// When the settings cannot be read (a key without access to them, an
// outage) and no zone was read before, the zone is unknown and every use
// errs on the safe side, with a warning naming the cause:
//   - start_from as a time does not start: the first poll fails (and is
//     retried) rather than read from a moment it cannot place;
//   - the orders sweep widens its window to start no later than meant in
//     any zone (more orders checked, none missed; the pruning watermark
//     keeps it from re-sending);
//   - an entry's age by the server's clock allows an hour for a clock
//     change, so a stretch needs a look-back rather than none;
//   - replay refuses to run;
//   - start_from: now still finds the newest entry (its search does not
//     depend on the zone).
//
// A refresh that fails keeps the zone read before.

// zoneMaxAge is how long a zone read from the account is trusted before it
// is read again.
const zoneMaxAge = 24 * time.Hour

// zoneRetryMin and zoneRetryMax bound the wait after a failed read: a key
// without access to the settings is not asked on every tick.
const (
	zoneRetryMin = time.Minute
	zoneRetryMax = time.Hour
)

// clockChange is the largest step a zone's clock makes (daylight saving
// time): what an entry's age is allowed when the zone is unknown.
const clockChange = time.Hour

// widest is where a window's start is written when the zone is unknown:
// the API reads it in its own zone, at most 26 h earlier than meant and
// never later (zones run from UTC-12 to UTC+14).
var widest = time.FixedZone("UTC-12", -12*3600)

// ErrZoneUnknown: the account's time zone could not be read and time_zone
// is not set, yet the step needs it (a first start from a time, a replay).
var ErrZoneUnknown = errors.New("poll: the account's time zone is unknown")

// zoneState is what the poller knows of the account's zone; guarded by
// Poller.run.
type zoneState struct {
	loc     *time.Location // nil: unknown
	readAt  time.Time      // when loc was read from the account
	next    time.Time      // no read before this, after a failure
	wait    time.Duration  // the current wait after failures
	lastErr error          // why the last read failed
}

// RefreshZone makes the next poll read the account's zone again (the
// daemon calls it on reload). Safe to call while a poll runs.
func (p *Poller) RefreshZone() { p.zoneStale.Store(true) }

// resolveZone reads the account's zone when it is due: never with a
// time_zone override, else when unknown, a day old, or after RefreshZone.
// A failure is logged, not returned: see the package's zone rules.
func (p *Poller) resolveZone(ctx context.Context) {
	if p.acct.TimeZone != nil {
		return
	}
	now := p.now()
	z := &p.zone
	stale := p.zoneStale.Swap(false)
	if z.loc != nil && !stale && now.Sub(z.readAt) < zoneMaxAge {
		return
	}
	if !stale && now.Before(z.next) {
		return
	}
	loc, err := p.readZone(ctx)
	if err != nil {
		z.lastErr = err
		z.wait = min(max(2*z.wait, zoneRetryMin), zoneRetryMax)
		z.next = now.Add(z.wait)
		if z.loc != nil {
			p.log.Warn("cannot read the account's time zone again; keeping the one read before",
				"time_zone", z.loc.String(), "retry_in", z.wait.String(), "error", err)
			return
		}
		p.log.Warn("cannot read the account's time zone from GET /api/v5/settings: start_from as a time waits, "+
			"the orders sweep widens its window, replay refuses; set time_zone to the account's zone to fix it",
			"retry_in", z.wait.String(), "error", err)
		return
	}
	switch {
	case z.loc == nil:
		p.log.Info("account time zone read from the account", "time_zone", loc.String())
	case z.loc.String() != loc.String():
		p.log.Warn("the account's time zone changed", "time_zone", loc.String(), "was", z.loc.String())
	}
	*z = zoneState{loc: loc, readAt: now}
}

// readZone reads the zone from the account, within one request timeout
// (retries included): a settings endpoint that struggles must not hold the
// poll up.
func (p *Poller) readZone(ctx context.Context) (*time.Location, error) {
	ctx, cancel := context.WithTimeout(ctx, max(p.acct.Timeout, time.Second))
	defer cancel()
	s, err := p.client.Settings(ctx)
	if err != nil {
		return nil, err
	}
	return s.Location()
}

// location is the zone dates are written and read in, and whether it is
// known; unknown, it is UTC (parsing stays consistent, see the rules).
func (p *Poller) location() (*time.Location, bool) {
	switch {
	case p.acct.TimeZone != nil:
		return p.acct.TimeZone, true
	case p.zone.loc != nil:
		return p.zone.loc, true
	}
	return time.UTC, false
}

// needZone returns the known zone, or ErrZoneUnknown with the cause.
func (p *Poller) needZone(what string) (*time.Location, error) {
	loc, known := p.location()
	if known {
		return loc, nil
	}
	cause := "not read yet"
	if p.zone.lastErr != nil {
		cause = p.zone.lastErr.Error()
	}
	return nil, fmt.Errorf("%w (%s); %s needs it: set time_zone to the account's zone", ErrZoneUnknown, cause, what)
}

// windowZone is the zone a window's start is written in: the account's,
// or, unknown, the one that makes the window start no later than meant.
func (p *Poller) windowZone() *time.Location {
	if loc, known := p.location(); known {
		return loc
	}
	return widest
}

// earliest and latest read a RetailCRM "Y-m-d H:i:s" time in the account's
// zone as the first and the last instant it can mean: they differ in the
// hour repeated when clocks go back, and for a time skipped when they go
// forward. Zero when it does not parse.
func (p *Poller) earliest(s string) time.Time {
	early, _ := wallTimes(s, p.loc())
	return early
}

func (p *Poller) latest(s string) time.Time {
	_, late := wallTimes(s, p.loc())
	return late
}

func (p *Poller) loc() *time.Location {
	loc, _ := p.location()
	return loc
}

// wallTimes returns the earliest and the latest instant a wall-clock time
// in loc can mean (the same one, but for times in a clock change).
func wallTimes(s string, loc *time.Location) (early, late time.Time) {
	w, err := time.Parse(time.DateTime, s) // the wall clock, as if in UTC
	if err != nil {
		return time.Time{}, time.Time{}
	}
	// The offsets in force around it: a zone changes its offset at most
	// once within a day either side.
	var offsets [3]int
	for i, d := range []time.Duration{-24 * time.Hour, 0, 24 * time.Hour} {
		_, offsets[i] = w.Add(d).In(loc).Zone()
	}
	if offsets[0] == offsets[1] && offsets[1] == offsets[2] { // no clock change near: one instant
		t := w.Add(-time.Duration(offsets[1]) * time.Second).In(loc)
		return t, t
	}
	var valid, all []time.Time
	for _, off := range offsets {
		t := w.Add(-time.Duration(off) * time.Second)
		all = append(all, t)
		if t.In(loc).Format(time.DateTime) == w.Format(time.DateTime) {
			valid = append(valid, t)
		}
	}
	if len(valid) == 0 { // skipped when clocks went forward: either side of the step
		valid = all
	}
	early, late = valid[0], valid[0]
	for _, t := range valid[1:] {
		if t.Before(early) {
			early = t
		}
		if t.After(late) {
			late = t
		}
	}
	return early.In(loc), late.In(loc)
}
