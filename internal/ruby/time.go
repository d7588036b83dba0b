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

// strptime

type strpItem struct {
	dir byte   // directive letter; 0 for literal text, ' ' for white space
	lit string // literal text
}

var strpSupported = "YmdeHMSNLyzZbBhaApPjsIklT DFRrcxXv%nt"

func compileStrptime(format string) ([]strpItem, error) {
	var items []strpItem
	for i := 0; i < len(format); {
		c := format[i]
		switch {
		case c == '%':
			if i+1 >= len(format) {
				return nil, fmt.Errorf("time_format %q ends with '%%'", format)
			}
			d := format[i+1]
			i += 2
			if d >= '0' && d <= '9' && (d == '3' || d == '6' || d == '9') && i < len(format) && format[i] == 'N' {
				d = 'N' // %3N, %6N, %9N: read digits
				i++
			}
			if d == ':' && i < len(format) && format[i] == 'z' { // %:z
				d = 'z'
				i++
			}
			switch d {
			case 'T':
				items = append(items, strpItem{dir: 'H'}, strpItem{lit: ":"}, strpItem{dir: 'M'}, strpItem{lit: ":"}, strpItem{dir: 'S'})
			case 'D', 'x':
				items = append(items, strpItem{dir: 'm'}, strpItem{lit: "/"}, strpItem{dir: 'd'}, strpItem{lit: "/"}, strpItem{dir: 'y'})
			case 'F':
				items = append(items, strpItem{dir: 'Y'}, strpItem{lit: "-"}, strpItem{dir: 'm'}, strpItem{lit: "-"}, strpItem{dir: 'd'})
			case 'R':
				items = append(items, strpItem{dir: 'H'}, strpItem{lit: ":"}, strpItem{dir: 'M'})
			case 'r':
				items = append(items, strpItem{dir: 'I'}, strpItem{lit: ":"}, strpItem{dir: 'M'}, strpItem{lit: ":"}, strpItem{dir: 'S'}, strpItem{dir: ' '}, strpItem{dir: 'p'})
			case 'X':
				items = append(items, strpItem{dir: 'H'}, strpItem{lit: ":"}, strpItem{dir: 'M'}, strpItem{lit: ":"}, strpItem{dir: 'S'})
			case 'c':
				items = append(items, strpItem{dir: 'a'}, strpItem{dir: ' '}, strpItem{dir: 'b'}, strpItem{dir: ' '}, strpItem{dir: 'e'}, strpItem{dir: ' '},
					strpItem{dir: 'H'}, strpItem{lit: ":"}, strpItem{dir: 'M'}, strpItem{lit: ":"}, strpItem{dir: 'S'}, strpItem{dir: ' '}, strpItem{dir: 'Y'})
			case 'v':
				items = append(items, strpItem{dir: 'e'}, strpItem{lit: "-"}, strpItem{dir: 'b'}, strpItem{lit: "-"}, strpItem{dir: 'Y'})
			case '%':
				items = append(items, strpItem{lit: "%"})
			case 'n', 't':
				items = append(items, strpItem{dir: ' '})
			default:
				if strings.IndexByte(strpSupported, d) < 0 || d == ' ' {
					return nil, fmt.Errorf("time_format %q: %%%c is not supported (supported: %%Y %%m %%d %%e %%H %%I %%M %%S %%N %%L %%y %%z %%Z %%b %%B %%a %%A %%p %%j %%s %%T %%D %%F %%R %%r %%c %%x %%X %%v %%%%)", format, d)
				}
				items = append(items, strpItem{dir: d})
			}
		case c == ' ' || c >= '\t' && c <= '\r':
			items = append(items, strpItem{dir: ' '})
			i++
		default:
			j := i
			for j < len(format) && format[j] != '%' && format[j] != ' ' && !(format[j] >= '\t' && format[j] <= '\r') {
				j++
			}
			items = append(items, strpItem{lit: format[i:j]})
			i = j
		}
	}
	return items, nil
}

var monthNames = []string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
var dayNames = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func readDigits(s string, i, width int) (v int, n int) {
	for n < width && i+n < len(s) && s[i+n] >= '0' && s[i+n] <= '9' {
		v = v*10 + int(s[i+n]-'0')
		n++
	}
	return v, n
}

// readOffset reads a numeric zone: +hh, +hhmm, +hh:mm (also with seconds).
func readOffset(s string) (sec int, n int, ok bool) {
	if len(s) == 0 || s[0] != '+' && s[0] != '-' {
		return 0, 0, false
	}
	h, k := readDigits(s, 1, 2)
	if k == 0 {
		return 0, 0, false
	}
	n = 1 + k
	off := h * 3600
	if n < len(s) && s[n] == ':' {
		if m, k2 := readDigits(s, n+1, 2); k2 == 2 {
			off += m * 60
			n += 3
		}
	} else if m, k2 := readDigits(s, n, 2); k2 == 2 {
		off += m * 60
		n += 2
	}
	if s[0] == '-' {
		off = -off
	}
	return off, n, true
}

var zoneAbbrevs = map[string]int{
	"UTC": 0, "UT": 0, "GMT": 0, "Z": 0,
	"EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600, "CDT": -5 * 3600,
	"MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
	"JST": 9 * 3600, "KST": 9 * 3600, "CET": 3600, "CEST": 2 * 3600, "BST": 3600,
}

func execStrptime(items []strpItem, s string, loc *time.Location, now func() time.Time) (time.Time, error) {
	year, mon, day, hour, min, sec, nsec := math.MinInt, -1, -1, -1, -1, -1, 0
	yday := -1
	pm := -1
	epoch, haveEpoch := int64(0), false
	off, haveOff := 0, false
	i := 0
	fail := func(what string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("%s at offset %d", what, i)
	}
	for _, it := range items {
		if it.dir == 0 {
			if !strings.HasPrefix(s[i:], it.lit) {
				return fail(fmt.Sprintf("want %q", it.lit))
			}
			i += len(it.lit)
			continue
		}
		switch it.dir {
		case ' ':
			for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
				i++
			}
		case 'Y':
			neg := false
			if i < len(s) && (s[i] == '+' || s[i] == '-') {
				neg = s[i] == '-'
				i++
			}
			v, n := readDigits(s, i, 4)
			if n == 0 {
				return fail("want a year")
			}
			i += n
			if neg {
				v = -v
			}
			year = v
		case 'y':
			v, n := readDigits(s, i, 2)
			if n == 0 {
				return fail("want a two-digit year")
			}
			i += n
			if v < 69 {
				year = 2000 + v
			} else {
				year = 1900 + v
			}
		case 'm', 'd', 'e', 'H', 'k', 'M', 'S', 'I', 'l':
			if (it.dir == 'e' || it.dir == 'k' || it.dir == 'l') && i < len(s) && s[i] == ' ' {
				i++
			}
			v, n := readDigits(s, i, 2)
			if n == 0 {
				return fail(fmt.Sprintf("want %%%c", it.dir))
			}
			i += n
			switch it.dir {
			case 'm':
				if v < 1 || v > 12 {
					return fail("month out of range")
				}
				mon = v
			case 'd', 'e':
				if v < 1 || v > 31 {
					return fail("day out of range")
				}
				day = v
			case 'H', 'k':
				if v > 23 {
					return fail("hour out of range")
				}
				hour = v
			case 'I', 'l':
				if v < 1 || v > 12 {
					return fail("hour out of range")
				}
				hour = v
			case 'M':
				if v > 59 {
					return fail("minute out of range")
				}
				min = v
			case 'S':
				if v > 60 {
					return fail("second out of range")
				}
				sec = v
			}
		case 'j':
			v, n := readDigits(s, i, 3)
			if n == 0 || v < 1 || v > 366 {
				return fail("want a day of the year")
			}
			i += n
			yday = v
		case 'N', 'L':
			v, n := readDigits(s, i, 9)
			if n == 0 {
				return fail("want fraction digits")
			}
			i += n
			for k := n; k < 9; k++ {
				v *= 10
			}
			nsec = v
			for i < len(s) && s[i] >= '0' && s[i] <= '9' { // beyond nanoseconds
				i++
			}
		case 's':
			neg := false
			if i < len(s) && (s[i] == '+' || s[i] == '-') {
				neg = s[i] == '-'
				i++
			}
			j := i
			var v int64
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				v = v*10 + int64(s[j]-'0')
				j++
			}
			if j == i {
				return fail("want epoch seconds")
			}
			i = j
			if neg {
				v = -v
			}
			epoch, haveEpoch = v, true
		case 'z', 'Z':
			if i < len(s) && (s[i] == 'z' || s[i] == 'Z') && (i+1 == len(s) || !isLetter(s[i+1])) {
				off, haveOff = 0, true
				i++
				continue
			}
			if o, n, ok := readOffset(s[i:]); ok {
				off, haveOff = o, true
				i += n
				continue
			}
			j := i
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			name := strings.ToUpper(s[i:j])
			o, ok := zoneAbbrevs[name]
			if !ok {
				return fail("want a time zone")
			}
			i = j
			if o2, n, ok := readOffset(s[i:]); ok && (name == "UTC" || name == "GMT") { // GMT+9
				o = o2
				i += n
			}
			off, haveOff = o, true
		case 'b', 'B', 'h':
			found := false
			for k, m := range monthNames {
				if len(s)-i >= len(m) && strings.EqualFold(s[i:i+len(m)], m) {
					mon, i, found = k+1, i+len(m), true
					break
				}
			}
			if !found {
				for k, m := range monthNames {
					if len(s)-i >= 3 && strings.EqualFold(s[i:i+3], m[:3]) {
						mon, i, found = k+1, i+3, true
						break
					}
				}
			}
			if !found {
				return fail("want a month name")
			}
		case 'a', 'A':
			found := false
			for _, d := range dayNames {
				if len(s)-i >= len(d) && strings.EqualFold(s[i:i+len(d)], d) {
					i, found = i+len(d), true
					break
				}
			}
			if !found {
				for _, d := range dayNames {
					if len(s)-i >= 3 && strings.EqualFold(s[i:i+3], d[:3]) {
						i, found = i+3, true
						break
					}
				}
			}
			if !found {
				return fail("want a day name")
			}
		case 'p', 'P':
			switch {
			case len(s)-i >= 2 && strings.EqualFold(s[i:i+2], "AM"):
				pm, i = 0, i+2
			case len(s)-i >= 2 && strings.EqualFold(s[i:i+2], "PM"):
				pm, i = 1, i+2
			case len(s)-i >= 4 && strings.EqualFold(s[i:i+4], "A.M."):
				pm, i = 0, i+4
			case len(s)-i >= 4 && strings.EqualFold(s[i:i+4], "P.M."):
				pm, i = 1, i+4
			default:
				return fail("want AM or PM")
			}
		}
	}
	// Text after the format is ignored, as fluentd's strptime ignores it.
	if haveEpoch {
		t := time.Unix(epoch, int64(nsec))
		return t, nil
	}
	if pm >= 0 && hour >= 0 {
		hour %= 12
		if pm == 1 {
			hour += 12
		}
	}
	zone := loc
	if haveOff {
		zone = time.FixedZone("", off)
	}
	if year == math.MinInt {
		// No year: fluentd takes the missing leading fields from the
		// current time.
		n := now().In(zone)
		year = n.Year()
		if mon < 0 {
			mon = int(n.Month())
			if day < 0 {
				day = n.Day()
			}
		}
	}
	if mon < 0 {
		mon = 1
	}
	if day < 0 {
		day = 1
	}
	if hour < 0 {
		hour = 0
	}
	if min < 0 {
		min = 0
	}
	if sec < 0 {
		sec = 0
	}
	if yday > 0 {
		return time.Date(year, 1, yday, hour, min, sec, nsec, zone), nil
	}
	return time.Date(year, time.Month(mon), day, hour, min, sec, nsec, zone), nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

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
