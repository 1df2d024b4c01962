package retailcrm

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// pathSettings is GET /api/v5/settings: the account's system settings.
const pathSettings = "/api/v5/settings"

// Settings is what the poller reads of GET /api/v5/settings. The API
// answers {"success": true, "settings": {"default_currency": {"value":
// ..., "updated_at": ...}, "system_language": {...}, "timezone": {"value":
// "Europe/Moscow", "updated_at": "Y-m-d H:i:s"}, "work_times": [...], ...}}:
// each setting an object with its value and when it last changed.
type Settings struct {
	// TimeZone is the account's zone as the API names it (IANA), in which
	// it reads every date filter and writes every date; "" when absent.
	TimeZone string
	// TimeZoneUpdatedAt is when it was last changed, as sent.
	TimeZoneUpdatedAt string
	DefaultCurrency   string
	SystemLanguage    string
}

// Location loads the account's zone. An absent or unknown name is an
// error naming it: the caller decides what to fall back to.
func (s Settings) Location() (*time.Location, error) {
	if s.TimeZone == "" {
		return nil, fmt.Errorf("retailcrm: %s: no timezone in the settings", pathSettings)
	}
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("retailcrm: %s: unknown timezone %.64q", pathSettings, s.TimeZone)
	}
	return loc, nil
}

// Settings returns the account's system settings.
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	body, err := c.get(ctx, "settings", pathSettings, nil)
	if err != nil {
		return Settings{}, err
	}
	s, err := decodeSettings(body)
	if err != nil {
		return Settings{}, fmt.Errorf("%w: %s: %w", ErrBadResponse, pathSettings, err)
	}
	return s, nil
}

// settingValue is one setting: {"value": ..., "updated_at": ...}. Any other
// shape leaves it empty.
type settingValue struct{ value, updatedAt string }

func (v *settingValue) UnmarshalJSON(b []byte) error {
	var r struct {
		Value     lenientString `json:"value"`
		UpdatedAt lenientString `json:"updated_at"`
	}
	if unmarshalObject(b, &r) == nil {
		*v = settingValue{string(r.Value), string(r.UpdatedAt)}
	}
	return nil
}

// decodeSettings decodes GET /api/v5/settings. Only a body whose "settings"
// is present and not an object fails; a setting of another shape is left
// empty.
func decodeSettings(body []byte) (Settings, error) {
	var r struct {
		Settings json.RawMessage `json:"settings"`
	}
	if err := unmarshalObject(body, &r); err != nil {
		return Settings{}, err
	}
	if isNull(r.Settings) {
		return Settings{}, nil
	}
	m := objectOrEmptyList(r.Settings) // [] is PHP's empty object
	if m == nil {
		return Settings{}, fmt.Errorf("settings: not an object: %.40q", r.Settings)
	}
	var tz, currency, language settingValue
	for key, v := range map[string]*settingValue{"timezone": &tz, "default_currency": &currency, "system_language": &language} {
		if raw, ok := m[key]; ok {
			_ = v.UnmarshalJSON(raw) // never fails
		}
	}
	return Settings{TimeZone: tz.value, TimeZoneUpdatedAt: tz.updatedAt, DefaultCurrency: currency.value, SystemLanguage: language.value}, nil
}
