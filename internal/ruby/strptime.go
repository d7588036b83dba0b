package ruby

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Ruby's strptime, as fluentd's TimeParser uses it: a format is compiled
// once into items (literal text, white space, or a directive with its
// reader from strpReaders), then each time string is read item by item
// into strpFields and resolved into a time. Text after the format is
// ignored, as fluentd ignores it.

// strpItem is one compiled piece of a format.
type strpItem struct {
	dir  byte       // directive letter; 0 for literal text, ' ' for white space
	lit  string     // literal text
	read strpReader // the directive's reader; nil for literal text
}

// strpFields are the fields read so far. Unset fields are -1 (year:
// math.MinInt); resolve fills them in.
type strpFields struct {
	year, mon, day, hour, min, sec, nsec int
	yday                                 int
	pm                                   int // -1 unset, 0 AM, 1 PM
	epoch                                int64
	haveEpoch                            bool
	off                                  int // seconds east of UTC
	haveOff                              bool
}

// A strpReader reads its directive at s[i:] into f. It returns the offset
// after what it read, or, when it fails, the offset to report and what it
// wanted.
type strpReader func(f *strpFields, s string, i int) (next int, want string)

// strpReaders holds every directive maruta reads; strpExpand the ones that
// stand for a sequence of others.
var strpReaders = map[byte]strpReader{
	' ': readSpace,
	'Y': readYear, 'y': readYear2,
	'm': numField('m', 1, 12, "month", false, func(f *strpFields, v int) { f.mon = v }),
	'd': numField('d', 1, 31, "day", false, func(f *strpFields, v int) { f.day = v }),
	'e': numField('e', 1, 31, "day", true, func(f *strpFields, v int) { f.day = v }),
	'H': numField('H', 0, 23, "hour", false, func(f *strpFields, v int) { f.hour = v }),
	'k': numField('k', 0, 23, "hour", true, func(f *strpFields, v int) { f.hour = v }),
	'I': numField('I', 1, 12, "hour", false, func(f *strpFields, v int) { f.hour = v }),
	'l': numField('l', 1, 12, "hour", true, func(f *strpFields, v int) { f.hour = v }),
	'M': numField('M', 0, 59, "minute", false, func(f *strpFields, v int) { f.min = v }),
	'S': numField('S', 0, 60, "second", false, func(f *strpFields, v int) { f.sec = v }),
	'j': readYearDay,
	'N': readFraction, 'L': readFraction,
	's': readEpoch,
	'z': readZone, 'Z': readZone,
	'b': readMonthName, 'B': readMonthName, 'h': readMonthName,
	'a': readDayName, 'A': readDayName,
	'p': readMeridian, 'P': readMeridian,
}

var strpExpand = map[byte]string{
	'T': "%H:%M:%S", 'X': "%H:%M:%S", 'R': "%H:%M", 'r': "%I:%M:%S %p",
	'D': "%m/%d/%y", 'x': "%m/%d/%y", 'F': "%Y-%m-%d", 'v': "%e-%b-%Y",
	'c': "%a %b %e %H:%M:%S %Y",
}

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
			if (d == '3' || d == '6' || d == '9') && i < len(format) && format[i] == 'N' {
				d = 'N' // %3N, %6N, %9N: read digits
				i++
			}
			if d == ':' && i < len(format) && format[i] == 'z' { // %:z
				d = 'z'
				i++
			}
			switch {
			case strpExpand[d] != "":
				sub, _ := compileStrptime(strpExpand[d])
				items = append(items, sub...)
			case d == '%':
				items = append(items, strpItem{lit: "%"})
			case d == 'n', d == 't':
				items = append(items, strpItem{dir: ' ', read: readSpace})
			case d != ' ' && strpReaders[d] != nil:
				items = append(items, strpItem{dir: d, read: strpReaders[d]})
			default:
				return nil, fmt.Errorf("time_format %q: %%%c is not supported (supported: %%Y %%m %%d %%e %%H %%I %%M %%S %%N %%L %%y %%z %%Z %%b %%B %%a %%A %%p %%j %%s %%T %%D %%F %%R %%r %%c %%x %%X %%v %%%%)", format, d)
			}
		case isSpace(c):
			items = append(items, strpItem{dir: ' ', read: readSpace})
			i++
		default:
			j := i
			for j < len(format) && format[j] != '%' && !isSpace(format[j]) {
				j++
			}
			items = append(items, strpItem{lit: format[i:j]})
			i = j
		}
	}
	return items, nil
}

func execStrptime(items []strpItem, s string, loc *time.Location, now func() time.Time) (time.Time, error) {
	f := strpFields{year: math.MinInt, mon: -1, day: -1, hour: -1, min: -1, sec: -1, yday: -1, pm: -1}
	i := 0
	for _, it := range items {
		var want string
		if it.read == nil {
			if !strings.HasPrefix(s[i:], it.lit) {
				want = fmt.Sprintf("want %q", it.lit)
			} else {
				i += len(it.lit)
			}
		} else {
			i, want = it.read(&f, s, i)
		}
		if want != "" {
			return time.Time{}, fmt.Errorf("%s at offset %d", want, i)
		}
	}
	return f.resolve(loc, now), nil
}

// resolve turns the fields read into a time: epoch seconds win; a 12-hour
// clock takes AM/PM; a numeric zone or abbreviation wins over loc; fields
// before the first one read come from the current time (fluentd's rule for
// a format without a year), later ones default to their minimum.
func (f *strpFields) resolve(loc *time.Location, now func() time.Time) time.Time {
	if f.haveEpoch {
		return time.Unix(f.epoch, int64(f.nsec))
	}
	if f.pm >= 0 && f.hour >= 0 {
		f.hour %= 12
		if f.pm == 1 {
			f.hour += 12
		}
	}
	zone := loc
	if f.haveOff {
		zone = time.FixedZone("", f.off)
	}
	if f.year == math.MinInt {
		n := now().In(zone)
		f.year = n.Year()
		if f.mon < 0 {
			f.mon = int(n.Month())
			if f.day < 0 {
				f.day = n.Day()
			}
		}
	}
	mon, day := max(f.mon, 1), max(f.day, 1)
	hour, min, sec := max(f.hour, 0), max(f.min, 0), max(f.sec, 0)
	if f.yday > 0 {
		return time.Date(f.year, 1, f.yday, hour, min, sec, f.nsec, zone)
	}
	return time.Date(f.year, time.Month(mon), day, hour, min, sec, f.nsec, zone)
}

func readSpace(_ *strpFields, s string, i int) (int, string) {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i, ""
}

// readSign reads an optional '+' or '-'.
func readSign(s string, i int) (int, bool) {
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		return i + 1, s[i] == '-'
	}
	return i, false
}

func readYear(f *strpFields, s string, i int) (int, string) {
	i, neg := readSign(s, i)
	v, n := readDigits(s, i, 4)
	if n == 0 {
		return i, "want a year"
	}
	if neg {
		v = -v
	}
	f.year = v
	return i + n, ""
}

func readYear2(f *strpFields, s string, i int) (int, string) {
	v, n := readDigits(s, i, 2)
	if n == 0 {
		return i, "want a two-digit year"
	}
	if v < 69 {
		f.year = 2000 + v
	} else {
		f.year = 1900 + v
	}
	return i + n, ""
}

// numField reads directive dir: a number of one or two digits in [lo, hi]
// (what names it in errors); blank allows one leading space (%e, %k, %l).
func numField(dir byte, lo, hi int, what string, blank bool, set func(*strpFields, int)) strpReader {
	missing := fmt.Sprintf("want %%%c", dir)
	return func(f *strpFields, s string, i int) (int, string) {
		if blank && i < len(s) && s[i] == ' ' {
			i++
		}
		v, n := readDigits(s, i, 2)
		if n == 0 {
			return i, missing
		}
		i += n
		if v < lo || v > hi {
			return i, what + " out of range"
		}
		set(f, v)
		return i, ""
	}
}

func readYearDay(f *strpFields, s string, i int) (int, string) {
	v, n := readDigits(s, i, 3)
	if n == 0 || v < 1 || v > 366 {
		return i, "want a day of the year"
	}
	f.yday = v
	return i + n, ""
}

// readFraction reads up to nine digits of a fraction of a second, and
// skips digits beyond nanoseconds.
func readFraction(f *strpFields, s string, i int) (int, string) {
	v, n := readDigits(s, i, 9)
	if n == 0 {
		return i, "want fraction digits"
	}
	i += n
	for k := n; k < 9; k++ {
		v *= 10
	}
	f.nsec = v
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i, ""
}

func readEpoch(f *strpFields, s string, i int) (int, string) {
	i, neg := readSign(s, i)
	j := i
	var v int64
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		v = v*10 + int64(s[j]-'0')
		j++
	}
	if j == i {
		return i, "want epoch seconds"
	}
	if neg {
		v = -v
	}
	f.epoch, f.haveEpoch = v, true
	return j, ""
}

// readZone reads Z, a numeric offset, or a zone abbreviation (GMT+9 too).
func readZone(f *strpFields, s string, i int) (int, string) {
	if i < len(s) && (s[i] == 'z' || s[i] == 'Z') && (i+1 == len(s) || !isLetter(s[i+1])) {
		f.off, f.haveOff = 0, true
		return i + 1, ""
	}
	if o, n, ok := readOffset(s[i:]); ok {
		f.off, f.haveOff = o, true
		return i + n, ""
	}
	j := i
	for j < len(s) && isLetter(s[j]) {
		j++
	}
	name := strings.ToUpper(s[i:j])
	o, ok := zoneAbbrevs[name]
	if !ok {
		return i, "want a time zone"
	}
	if o2, n, ok := readOffset(s[j:]); ok && (name == "UTC" || name == "GMT") { // GMT+9
		o = o2
		j += n
	}
	f.off, f.haveOff = o, true
	return j, ""
}

func readMonthName(f *strpFields, s string, i int) (int, string) {
	if k, n := readName(s, i, monthNames); n > 0 {
		f.mon = k + 1
		return i + n, ""
	}
	return i, "want a month name"
}

func readDayName(_ *strpFields, s string, i int) (int, string) {
	if _, n := readName(s, i, dayNames); n > 0 {
		return i + n, ""
	}
	return i, "want a day name"
}

// readName matches a full name of names at s[i:], else a three-letter
// abbreviation, ignoring case. It returns the index and the length read (0:
// none).
func readName(s string, i int, names []string) (int, int) {
	for k, m := range names {
		if len(s)-i >= len(m) && strings.EqualFold(s[i:i+len(m)], m) {
			return k, len(m)
		}
	}
	for k, m := range names {
		if len(s)-i >= 3 && strings.EqualFold(s[i:i+3], m[:3]) {
			return k, 3
		}
	}
	return 0, 0
}

func readMeridian(f *strpFields, s string, i int) (int, string) {
	for _, m := range [...]struct {
		text string
		pm   int
	}{{"AM", 0}, {"PM", 1}, {"A.M.", 0}, {"P.M.", 1}} {
		if len(s)-i >= len(m.text) && strings.EqualFold(s[i:i+len(m.text)], m.text) {
			f.pm = m.pm
			return i + len(m.text), ""
		}
	}
	return i, "want AM or PM"
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

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
