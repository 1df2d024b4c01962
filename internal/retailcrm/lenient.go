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
	val, _ := parseFlag(b)
	*v = lenientBool(val)
	return nil
}

// lenientFlag is a lenientBool that also remembers whether the value was
// one of the recognised forms, for the fields where "absent or odd" must
// not read as false (the envelope's success).
type lenientFlag struct{ set, value bool }

func (f *lenientFlag) UnmarshalJSON(b []byte) error {
	f.value, f.set = parseFlag(b)
	return nil
}

// parseFlag reads true/false, 1/0 and their string forms ("true", "1",
// ...): PHP clients and mocks send all of them. ok is false for anything else.
func parseFlag(b []byte) (value, ok bool) {
	switch strings.Trim(string(bytes.TrimSpace(b)), `"`) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

// lenientStrings takes a list of strings, or an object of them (PHP arrays
// with gaps in their keys encode as objects, read in key order); numbers
// and booleans read as their text, and empty items (null, "", objects) are
// left out. Anything else gives nil. ok reports whether the value was a
// list or an object at all.
type lenientStrings struct {
	list []string
	ok   bool
}

func (l *lenientStrings) UnmarshalJSON(b []byte) error {
	*l = lenientStrings{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '[':
		var items []lenientString
		if json.Unmarshal(b, &items) != nil {
			return nil
		}
		l.ok = true
		for _, s := range items {
			if s != "" {
				l.list = append(l.list, string(s))
			}
		}
	case '{':
		var m map[string]lenientString
		if json.Unmarshal(b, &m) != nil {
			return nil
		}
		l.ok = true
		keys := make(map[string]string, len(m))
		for k, s := range m {
			keys[k] = string(s)
		}
		for _, k := range sortedKeys(keys) {
			if keys[k] != "" {
				l.list = append(l.list, keys[k])
			}
		}
	}
	return nil
}
