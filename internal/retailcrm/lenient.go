package retailcrm

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Lenient scalars never fail to decode: a value of an unexpected JSON type
// becomes the zero value (or its text, for strings), so one odd field does
// not fail a whole page of orders.

// lenientString takes a string, or the JSON text of a number or boolean;
// null, objects and lists give "".
type lenientString string

func (s *lenientString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*s = ""
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		var v string
		if json.Unmarshal(b, &v) == nil {
			*s = lenientString(v)
		}
	case '{', '[', 'n':
	default:
		*s = lenientString(b)
	}
	return nil
}

// lenientInt takes an integral number or a numeric string; anything else
// gives 0.
type lenientInt int64

func (n *lenientInt) UnmarshalJSON(b []byte) error {
	*n = 0
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = lenientInt(v)
	} else if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		*n = lenientInt(f)
	}
	return nil
}

// lenientFloat takes a number or a numeric string; anything else gives 0.
type lenientFloat float64

func (f *lenientFloat) UnmarshalJSON(b []byte) error {
	*f = 0
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
		*f = lenientFloat(v)
	}
	return nil
}

// lenientBool takes true/false, 1/0 or their string forms; anything else
// gives false.
type lenientBool bool

func (v *lenientBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	*v = lenientBool(s == "true" || s == "1")
	return nil
}
