package strftime

import (
	"strconv"
	"strings"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// Directives are the directive letters AppendDirective renders.
const Directives = "YCymdejHkIlMSLNsbBhaAuwjpzZFTDR"

// Known reports whether d is a directive letter.
func Known(d byte) bool { return strings.IndexByte(Directives, d) >= 0 }

var (
	monthNames = [...]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	dayNames   = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
)

// AppendDirective appends one directive d (a letter of Directives) rendered
// for t, which must be in UTC. Another byte is appended as it is.
func AppendDirective(b []byte, d byte, t time.Time) []byte {
	pad := func(b []byte, v, width int, c byte) []byte {
		s := strconv.Itoa(v)
		for i := len(s); i < width; i++ {
			b = append(b, c)
		}
		return append(b, s...)
	}
	switch d {
	case 'Y':
		return pad(b, t.Year(), 4, '0')
	case 'C':
		return pad(b, t.Year()/100, 2, '0')
	case 'y':
		return pad(b, t.Year()%100, 2, '0')
	case 'm':
		return pad(b, int(t.Month()), 2, '0')
	case 'd':
		return pad(b, t.Day(), 2, '0')
	case 'e':
		return pad(b, t.Day(), 2, ' ')
	case 'j':
		return pad(b, t.YearDay(), 3, '0')
	case 'H':
		return pad(b, t.Hour(), 2, '0')
	case 'k':
		return pad(b, t.Hour(), 2, ' ')
	case 'I', 'l':
		h := t.Hour() % 12
		if h == 0 {
			h = 12
		}
		if d == 'l' {
			return pad(b, h, 2, ' ')
		}
		return pad(b, h, 2, '0')
	case 'p':
		if t.Hour() < 12 {
			return append(b, "AM"...)
		}
		return append(b, "PM"...)
	case 'M':
		return pad(b, t.Minute(), 2, '0')
	case 'S':
		return pad(b, t.Second(), 2, '0')
	case 'L':
		return pad(b, t.Nanosecond()/1e6, 3, '0')
	case 'N':
		return pad(b, t.Nanosecond(), 9, '0')
	case 's':
		return strconv.AppendInt(b, t.Unix(), 10)
	case 'b', 'h':
		return append(b, monthNames[t.Month()-1][:3]...)
	case 'B':
		return append(b, monthNames[t.Month()-1]...)
	case 'a':
		return append(b, dayNames[t.Weekday()][:3]...)
	case 'A':
		return append(b, dayNames[t.Weekday()]...)
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return strconv.AppendInt(b, int64(wd), 10)
	case 'w':
		return strconv.AppendInt(b, int64(t.Weekday()), 10)
	case 'z':
		return append(b, "+0000"...)
	case 'Z':
		return append(b, "UTC"...)
	case 'F':
		return AppendDirective(AppendDirective(AppendDirective(AppendDirective(AppendDirective(b, 'Y', t), '-', t), 'm', t), '-', t), 'd', t)
	case 'T':
		return AppendDirective(AppendDirective(AppendDirective(AppendDirective(AppendDirective(b, 'H', t), ':', t), 'M', t), ':', t), 'S', t)
	case 'R':
		return AppendDirective(AppendDirective(AppendDirective(b, 'H', t), ':', t), 'M', t)
	case 'D':
		return AppendDirective(AppendDirective(AppendDirective(AppendDirective(AppendDirective(b, 'm', t), '/', t), 'd', t), '/', t), 'y', t)
	}
	return append(b, d)
}

// Format is a compiled strftime format for event times (jsonl
// time_format). It supports %L (milliseconds), %N (nanoseconds) and %3N,
// %6N, %9N besides the directives of paths. A Format is read-only once
// compiled: safe for concurrent use.
type Format struct {
	parts []part
}

type part struct {
	lit    string
	dir    byte
	digits int // for N
}

// Compile compiles f. It never fails: '%' before a letter it does not know
// stays literal text.
func Compile(f string) Format {
	var tf Format
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			tf.parts = append(tf.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 >= len(f) {
			lit.WriteByte(f[i])
			continue
		}
		i++
		d := f[i]
		digits := 0
		if d >= '1' && d <= '9' && i+1 < len(f) && f[i+1] == 'N' {
			digits = int(d - '0')
			i++
			d = 'N'
		}
		switch {
		case d == '%':
			lit.WriteByte('%')
		case d == 'N':
			flush()
			if digits == 0 {
				digits = 9
			}
			tf.parts = append(tf.parts, part{dir: 'N', digits: digits})
		case Known(d):
			flush()
			tf.parts = append(tf.parts, part{dir: d})
		default:
			lit.WriteByte('%')
			lit.WriteByte(d)
		}
	}
	flush()
	return tf
}

// Append appends t (converted to UTC) rendered with the format.
func (tf *Format) Append(b []byte, t time.Time) []byte {
	t = t.UTC()
	for _, p := range tf.parts {
		b = p.append(b, t)
	}
	return b
}

// append renders one part of the format for t (in UTC).
func (p part) append(b []byte, t time.Time) []byte {
	switch {
	case p.dir == 0:
		return append(b, p.lit...)
	case p.dir == 'N':
		ns := t.Nanosecond()
		for i := p.digits; i < 9; i++ {
			ns /= 10
		}
		s := strconv.Itoa(ns)
		for i := len(s); i < p.digits; i++ {
			b = append(b, '0')
		}
		return append(b, s...)
	default:
		return AppendDirective(b, p.dir, t)
	}
}

// Cache renders event times with a Format, rendering what does not change
// within a second (date, hour, …) once per second: a time then costs a copy
// of that text and the sub-second digits. Not safe for concurrent use: one
// Cache per goroutine (the jsonl encoder makes one per chunk).
type Cache struct {
	f     *Format
	valid bool
	sec   int64
	text  []byte
	runs  []timeRun
}

// NewCache returns a Cache for f.
func NewCache(f *Format) *Cache { return &Cache{f: f} }

// timeRun is the text up to end, then a sub-second part of digits digits
// (0: none; the last run).
type timeRun struct {
	end    int
	digits int
}

// Append appends t rendered exactly as c's Format.Append(b, t.Std()) does.
func (c *Cache) Append(b []byte, t event.Time) []byte {
	sec, nsec := t.Unix()
	if !c.valid || sec != c.sec {
		c.valid, c.sec = true, sec
		st := time.Unix(sec, 0).UTC()
		c.text, c.runs = c.text[:0], c.runs[:0]
		for _, p := range c.f.parts {
			switch {
			case p.dir == 'N':
				c.runs = append(c.runs, timeRun{len(c.text), p.digits})
			case p.dir == 'L':
				c.runs = append(c.runs, timeRun{len(c.text), 3})
			default:
				c.text = p.append(c.text, st)
			}
		}
		c.runs = append(c.runs, timeRun{len(c.text), 0})
	}
	// %L and %kN are the first digits of the nanoseconds padded to nine.
	var ns [9]byte
	for i, v := 8, nsec; i >= 0; i-- {
		ns[i] = byte('0' + v%10)
		v /= 10
	}
	from := 0
	for _, r := range c.runs {
		b = append(b, c.text[from:r.end]...)
		b = append(b, ns[:r.digits]...)
		from = r.end
	}
	return b
}
