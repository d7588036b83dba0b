package ruby

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// TimeParser turns a record's time field into an event time, as fluentd's
// TimeParser and NumericTimeParser do:
//
//   - string: strptime with the time_format (the fields fluentd's strptime
//     reads, trailing text ignored as fluentd ignores it); "%iso8601" for
//     ISO 8601; without a format a lenient parse of the common layouts
//     (RFC 3339, "2006-01-02 15:04:05 -0700", RFC 1123, Apache, syslog);
//     the value must be a string;
//   - unixtime: Ruby's to_i of a string or number (seconds);
//   - float: seconds and up to nine fraction digits, split at the first '.'
//     of the value's text, as fluentd does.
//
// A format without %z/%Z reads times in the configured time zone (UTC by
// default; fluentd uses its process's local zone, UTC in its container
// image).
type TimeParser struct {
	typ    string // string, unixtime, float
	format []strpItem
	iso    bool
	loc    *time.Location
	now    func() time.Time
}

// ErrTimeValue is the error of a value that is not a string where a time
// string is expected.
var ErrTimeValue = errors.New("time value must be a string")

// NewTimeParser returns the parser of a parse step's time_type (string,
// unixtime, float; "" = string with a format, else a lenient parse or a
// number), time_format ("%iso8601" for ISO 8601) and timezone (for
// formats without a zone; UTC when empty).
func NewTimeParser(typ, format, tz string) (*TimeParser, error) {
	tp := &TimeParser{typ: typ, loc: time.UTC, now: time.Now}
	if tz != "" {
		loc, err := ParseTimezone(tz)
		if err != nil {
			return nil, err
		}
		tp.loc = loc
	}
	if typ == "" {
		if format != "" {
			tp.typ = "string"
		} else {
			tp.typ = "auto"
		}
	}
	if format == "%iso8601" {
		tp.iso = true
		return tp, nil
	}
	if format != "" {
		items, err := compileStrptime(format)
		if err != nil {
			return nil, err
		}
		tp.format = items
	}
	return tp, nil
}

// ParseTimezone reads "+09:00", "+0900", "-05", "UTC" or an IANA name.
func ParseTimezone(tz string) (*time.Location, error) {
	if tz == "UTC" || tz == "Z" || tz == "GMT" {
		return time.UTC, nil
	}
	if tz[0] == '+' || tz[0] == '-' {
		if off, n, ok := readOffset(tz); ok && n == len(tz) {
			return time.FixedZone(tz, off), nil
		}
		return nil, fmt.Errorf("timezone %q: want +hh:mm, +hhmm or a zone name", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %v", tz, err)
	}
	return loc, nil
}

// Parse reads the raw msgpack value v.
func (tp *TimeParser) Parse(v []byte) (event.Time, error) {
	switch tp.typ {
	case "unixtime":
		switch msgpack.Peek(v) {
		case msgpack.Str, msgpack.Bin, msgpack.Int, msgpack.Float:
		default:
			return 0, fmt.Errorf("time value must be a string or a number")
		}
		if msgpack.Peek(v) == msgpack.Float {
			f, _, _ := msgpack.ReadFloat(v)
			return event.FromUnix(int64(f), 0), nil
		}
		var buf [64]byte
		return event.FromUnix(ToI(AppendToS(buf[:0], v)), 0), nil
	case "float":
		switch msgpack.Peek(v) {
		case msgpack.Str, msgpack.Bin, msgpack.Int, msgpack.Float:
		default:
			return 0, fmt.Errorf("time value must be a string or a number")
		}
		var buf [64]byte
		return floatTime(AppendToS(buf[:0], v)), nil
	case "auto":
		switch msgpack.Peek(v) {
		case msgpack.Int, msgpack.Float:
			var buf [64]byte
			return floatTime(AppendToS(buf[:0], v)), nil
		}
	}
	t := msgpack.Peek(v)
	if t != msgpack.Str && t != msgpack.Bin {
		return 0, ErrTimeValue
	}
	s, _, _, _ := msgpack.ReadBytes(v)
	if len(s) == 0 {
		return tp.ParseString("")
	}
	// Not copied: the parsers keep no reference to the text.
	return tp.ParseString(unsafe.String(&s[0], len(s)))
}

// ParseString reads a time string.
func (tp *TimeParser) ParseString(s string) (event.Time, error) {
	var t time.Time
	var err error
	switch {
	case tp.iso:
		t, err = parseISO8601(s, tp.loc)
	case tp.format != nil:
		t, err = execStrptime(tp.format, s, tp.loc, tp.now)
	default:
		t, err = parseLenient(s, tp.loc)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid time %q: %v", s, err)
	}
	return event.Time(t.UnixNano()), nil
}

// floatTime is fluentd's parse_float on the value's text.
func floatTime(s []byte) event.Time {
	str := string(s)
	secS, nsecS, _ := strings.Cut(str, ".")
	if i := strings.IndexByte(nsecS, '.'); i >= 0 {
		nsecS = nsecS[:i]
	}
	if len(nsecS) > 9 {
		nsecS = nsecS[:9]
	}
	nsecS += strings.Repeat("0", 9-len(nsecS))
	return event.FromUnix(ToI([]byte(secS)), ToI([]byte(nsecS)))
}

// parseISO8601 is Ruby's Time.iso8601: date, 'T', time, optional fraction,
// zone (local time without one).
func parseISO8601(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not ISO 8601")
}

var lenientLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 Z07:00",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999 MST",
	"2006-01-02 15:04:05.999999999",
	"2006/01/02 15:04:05.999999999",
	time.RFC1123Z,
	time.RFC1123,
	time.RFC850,
	time.RubyDate,
	time.UnixDate,
	time.ANSIC,
	"02/Jan/2006:15:04:05 -0700",
	"2006-01-02",
}

// parseLenient stands in for Ruby's Time.parse on the layouts logs use.
func parseLenient(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range lenientLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	if t, err := time.ParseInLocation(time.Stamp, s, loc); err == nil { // syslog: no year
		n := time.Now().In(loc)
		return time.Date(n.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc), nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(v, 0) {
		return time.Unix(0, int64(v*1e9)), nil
	}
	return time.Time{}, errors.New("no time_format given and the value is not in a known layout (RFC 3339, \"2006-01-02 15:04:05 -0700\", RFC 1123, Apache, syslog)")
}
