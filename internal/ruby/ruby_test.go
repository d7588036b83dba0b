package ruby

import (
	"math"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/msgpack"
)

func TestRubyRegexpTranslation(t *testing.T) {
	for _, c := range []struct {
		pat, flags, in string
		want           bool
	}{
		{`^b$`, "", "a\nb\nc", true},         // Ruby ^ and $ are line anchors
		{`\Ab\z`, "", "a\nb", false},         // \A and \z are not
		{`a\Z`, "", "a\n", true},             // \Z before a final newline
		{`a\Z`, "", "a\nb", false},           //
		{`a.b`, "", "a\nb", false},           // . does not match newline
		{`a.b`, "m", "a\nb", true},           // Ruby's m is dotall
		{`(?m:a.b)`, "", "a\nb", true},       // inline too
		{`(?-mix:a.b)`, "", "aXb", true},     // Regexp#to_s form
		{`ERROR`, "i", "error", true},        //
		{`\h+$`, "", "beef", true},           // \h is a hex digit
		{`^\h+$`, "", "xyz", false},          //
		{`[\h-]+`, "", "12-ab", true},        //
		{`\e\[31m`, "", "\x1b[31m", true},    //
		{`\u00e9`, "", "é", true},            //
		{`\x41`, "", "A", true},              //
		{`a{,2}b`, "", "aab", true},          // {,n}
		{`a{,2}b`, "", "xaaab", true},        //
		{`x{`, "", "x{", true},               // a literal brace
		{`(?<year>\d{4})`, "", "2026", true}, // named groups
		{`(?'y'\d+)`, "", "7", true},         //
		{`\p{^Digit}`, "", "a", true},        // negated property (Go: \P)
		{`\p{Alpha}+`, "", "é", true},        // Ruby property names
		{`a(?#comment)b`, "", "ab", true},    //
		{`[[:digit:]]+`, "", "42", true},     //
		{`\y`, "", "y", true},                // unknown escapes are the letter
		{`[\b]`, "", "\b", true},             // backspace in a class
		{`\0101`, "", "\b1", true},           // octal: three digits at most
		{`caf\é`, "", "café", true},          // an escaped non-ASCII character is itself
		{`[\é]`, "", "é", true},              //
	} {
		re, err := CompileRegexp(c.pat, c.flags)
		if err != nil {
			t.Errorf("%q: %v", c.pat, err)
			continue
		}
		if got := re.Match([]byte(c.in)); got != c.want {
			t.Errorf("/%s/%s =~ %q: %v, want %v", c.pat, c.flags, c.in, got, c.want)
		}
	}
	for _, bad := range []string{`(?=a)`, `(?!a)`, `(?<=a)`, `(?<!a)`, `(?>a)`, `(a)\1`, `\k<n>`, `\g<n>`, `a*+`, `a++`, `a?+`, `a{2}+`, `(?~a)`, `(?(1)a|b)`, `\G`, `\K`, `[a[b]]`, `[a-z&&[^b]]`, `(?x) a`} {
		if _, err := CompileRegexp(bad, ""); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	for _, c := range []struct{ in, pat, flags string }{
		{"/abc/", "abc", ""}, {"/abc/i", "abc", "i"}, {"/a/b/im", "a/b", "im"}, {"abc", "abc", ""}, {"a/b", "a/b", ""},
	} {
		p, f, err := ParseRegexpLiteral(c.in)
		if err != nil || p != c.pat || f != c.flags {
			t.Errorf("ParseRegexpLiteral(%q) = %q, %q, %v", c.in, p, f, err)
		}
	}
	if _, _, err := ParseRegexpLiteral("/api/v1/users"); err == nil {
		t.Error("/api/v1/users: accepted (fluentd rejects a '/' start without a closing '/')")
	}
}

func TestRubyToS(t *testing.T) {
	for _, c := range []struct {
		v    []byte
		want string
	}{
		{msgpack.AppendNil(nil), ""},
		{msgpack.AppendBool(nil, true), "true"},
		{msgpack.AppendInt(nil, -42), "-42"},
		{msgpack.AppendUint(nil, math.MaxUint64), "18446744073709551615"},
		{msgpack.AppendFloat64(nil, 1), "1.0"},
		{msgpack.AppendFloat64(nil, 1.5), "1.5"},
		{msgpack.AppendFloat64(nil, 100), "100.0"},
		{msgpack.AppendFloat64(nil, 1e15), "1000000000000000.0"},
		{msgpack.AppendFloat64(nil, 1e16), "1.0e+16"},
		{msgpack.AppendFloat64(nil, 1.2345e20), "1.2345e+20"},
		{msgpack.AppendFloat64(nil, 0.0001), "0.0001"},
		{msgpack.AppendFloat64(nil, 0.00001), "1.0e-05"},
		{msgpack.AppendFloat64(nil, math.Copysign(0, -1)), "-0.0"},
		{msgpack.AppendFloat64(nil, pointThree()), "0.30000000000000004"},
		{msgpack.AppendFloat64(nil, math.Inf(-1)), "-Infinity"},
		{msgpack.AppendFloat64(nil, math.NaN()), "NaN"},
		{msgpack.AppendString(nil, "plain"), "plain"},
		{msgpack.AppendString(msgpack.AppendString(msgpack.AppendMapHeader(nil, 1), "k"), "a\"b\n#{x}"), `{"k"=>"a\"b\n\#{x}"}`},
		{msgpack.AppendNil(msgpack.AppendInt(msgpack.AppendArrayHeader(nil, 2), 1)), "[1, nil]"},
		{msgpack.AppendString(nil, "\x01é\xff"), "\x01é\xff"},
		{msgpack.AppendString(msgpack.AppendArrayHeader(nil, 1), "\x01é\xff"), `["\u0001é\xFF"]`},
		{msgpack.AppendEventTime(nil, 1700000000, 5), "1700000000"},
	} {
		if got := string(AppendToS(nil, c.v)); got != c.want {
			t.Errorf("to_s(%x) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestScrub(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ok", "ok"}, {"caf\xe9", "caf?"}, {"\xff\xfe", "??"}, {"\xe6\x97", "?"}, {"\xe6\x97x", "?x"}, {"日本", "日本"}, {"\xed\xa0\x80", "???"},
	} {
		if got := string(AppendScrub(nil, []byte(c.in))); got != c.want {
			t.Errorf("scrub(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStrptime(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }
	for _, c := range []struct{ format, in, want string }{
		{"%Y-%m-%dT%H:%M:%SZ", "2026-11-22T13:04:05Z", "2026-11-22T13:04:05Z"},
		{"%Y-%m-%dT%H:%M:%S.%N%z", "2026-11-22T13:04:05.123+09:00", "2026-11-22T04:04:05.123Z"},
		{"%Y-%m-%dT%H:%M:%S.%L%z", "2026-11-22T13:04:05.5-0130", "2026-11-22T14:34:05.5Z"},
		{"%d/%b/%Y:%H:%M:%S %z", "22/Nov/2026:13:04:05 +0000", "2026-11-22T13:04:05Z"},
		{"%Y-%m-%d %H:%M:%S", "2026-11-22 13:04:05 trailing text", "2026-11-22T13:04:05Z"},
		{"%Y-%m-%d  %H:%M", "2026-11-22\t13:04", "2026-11-22T13:04:00Z"},
		{"%b %e %H:%M:%S", "Nov  2 13:04:05", "2026-11-02T13:04:05Z"},
		{"%s", "1700000000", "2023-11-14T22:13:20Z"},
		{"%I:%M %p %Y-%m-%d", "01:30 PM 2026-01-02", "2026-01-02T13:30:00Z"},
		{"%Y-%j", "2026-032", "2026-02-01T00:00:00Z"},
		{"%a, %d %B %Y %T %Z", "Sun, 22 November 2026 13:04:05 JST", "2026-11-22T04:04:05Z"},
		{"%F %T", "2026-11-22 13:04:05", "2026-11-22T13:04:05Z"},
		{"%y%m%d", "261122", "2026-11-22T00:00:00Z"},
	} {
		if got := strptime(c.format, c.in, now); got != c.want {
			t.Errorf("%q %q = %s, want %s", c.format, c.in, got, c.want)
		}
	}
	for _, c := range []struct{ format, in string }{
		{"%Y-%m-%d", "2026/11/22"}, {"%Y-%m-%d", "2026-13-01"}, {"%H:%M", "24:00"}, {"%z", "nowhere"}, {"%Y", "abcd"},
	} {
		items, _ := compileStrptime(c.format)
		if _, err := execStrptime(items, c.in, time.UTC, now); err == nil {
			t.Errorf("%q %q: accepted", c.format, c.in)
		}
	}
	// A zone without %z comes from the timezone setting.
	tp, err := NewTimeParser("string", "%Y-%m-%d %H:%M:%S", "+09:00")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := tp.ParseString("2026-11-22 09:00:00")
	if err != nil || tm.Std().Format(time.RFC3339) != "2026-11-22T00:00:00Z" {
		t.Errorf("timezone +09:00: %v %v", tm.Std(), err)
	}
	for _, in := range []string{"2026-11-22T13:04:05Z", "2026-11-22T13:04:05.123456+00:00", "2026-11-22 13:04:05 +0000", "Sun, 22 Nov 2026 13:04:05 GMT", "22/Nov/2026:13:04:05 +0000"} {
		if _, err := parseLenient(in, time.UTC); err != nil {
			t.Errorf("lenient %q: %v", in, err)
		}
	}
}

func pointThree() float64 { a, b := 0.1, 0.2; return a + b }

// TestStrptimeDirectives pins each directive: what it reads, and the error
// (and offset) of what it refuses. Without a year, the leading fields come
// from "now" (2026-03-04T05:06:07Z), the others default to their minimum.
func TestStrptimeDirectives(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }
	for _, c := range []struct{ format, in, want string }{
		{"%Y", "2026", "2026-01-01T00:00:00Z"},
		{"%Y", "-44", "-0044-01-01T00:00:00Z"},
		{"%Y", "x", "error: want a year at offset 0"},
		{"%y", "68", "2068-01-01T00:00:00Z"},
		{"%y", "69", "1969-01-01T00:00:00Z"},
		{"%y", "-", "error: want a two-digit year at offset 0"},
		{"%m", "2", "2026-02-01T00:00:00Z"},
		{"%m", "13", "error: month out of range at offset 2"},
		{"%m", "x", "error: want %m at offset 0"},
		{"%d", "31", "2026-03-31T00:00:00Z"},
		{"%d", "0", "error: day out of range at offset 1"},
		{"%e", " 7", "2026-03-07T00:00:00Z"},
		{"%k", " 7", "2026-03-04T07:00:00Z"},
		{"%l", " 7", "2026-03-04T07:00:00Z"},
		{"%H", "23", "2026-03-04T23:00:00Z"},
		{"%H", "24", "error: hour out of range at offset 2"},
		{"%I %p", "12 AM", "2026-03-04T00:00:00Z"},
		{"%I", "13", "error: hour out of range at offset 2"},
		{"%M", "60", "error: minute out of range at offset 2"},
		{"%S", "60", "2026-03-04T00:01:00Z"},
		{"%S", "61", "error: second out of range at offset 2"},
		{"%j", "366", "2027-01-01T00:00:00Z"},
		{"%j", "0", "error: want a day of the year at offset 0"},
		{"%N", "1234567891", "2026-03-04T00:00:00.123456789Z"},
		{"%L", "5", "2026-03-04T00:00:00.5Z"},
		{"%N", "x", "error: want fraction digits at offset 0"},
		{"%s", "1700000000", "2023-11-14T22:13:20Z"},
		{"%s %N", "-5 5", "1969-12-31T23:59:55.5Z"},
		{"%s", "+", "error: want epoch seconds at offset 1"},
		{"%z", "+09:00", "2026-03-03T15:00:00Z"},
		{"%z", "-0130", "2026-03-04T01:30:00Z"},
		{"%z", "Z", "2026-03-04T00:00:00Z"},
		{"%z", "GMT+9", "2026-03-03T15:00:00Z"},
		{"%z", "pdt", "2026-03-03T07:00:00Z"},
		{"%z", "Zulu", "error: want a time zone at offset 0"},
		{"%Z", "nowhere", "error: want a time zone at offset 0"},
		{"%b", "Sept", "2026-09-01T00:00:00Z"},
		{"%B", "september", "2026-09-01T00:00:00Z"},
		{"%h", "x", "error: want a month name at offset 0"},
		{"%a %d", "THU 5", "2026-03-05T00:00:00Z"},
		{"%A", "Thursday", "2026-03-04T00:00:00Z"},
		{"%a", "Th", "error: want a day name at offset 0"},
		{"%p", "P.M.", "2026-03-04T00:00:00Z"},
		{"%P", "xm", "error: want AM or PM at offset 0"},
		{"%T", "13:04:05", "2026-03-04T13:04:05Z"},
		{"%D", "11/22/26", "2026-11-22T00:00:00Z"},
		{"%F", "2026-11-22", "2026-11-22T00:00:00Z"},
		{"%R", "13:04", "2026-03-04T13:04:00Z"},
		{"%r", "01:04:05 PM", "2026-03-04T13:04:05Z"},
		{"%c", "Sun Nov 22 13:04:05 2026", "2026-11-22T13:04:05Z"},
		{"%x %X", "11/22/26 13:04:05", "2026-11-22T13:04:05Z"},
		{"%v", "22-Nov-2026", "2026-11-22T00:00:00Z"},
		{"%%%n%t", "%  ", "2026-03-04T00:00:00Z"},
		{"at %H", "at 7", "2026-03-04T07:00:00Z"},
		{"at %H", "on 7", "error: want \"at\" at offset 0"},
	} {
		if got := strptime(c.format, c.in, now); got != c.want {
			t.Errorf("%q %q = %s, want %s", c.format, c.in, got, c.want)
		}
	}
	for _, bad := range []string{"%Q", "%", "%E", "% "} {
		if _, err := compileStrptime(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

// strptime reads in with format in UTC: the time in RFC 3339 (UTC), or
// "error: " and the error.
func strptime(format, in string, now func() time.Time) string {
	items, err := compileStrptime(format)
	if err == nil {
		var tm time.Time
		if tm, err = execStrptime(items, in, time.UTC, now); err == nil {
			return tm.UTC().Format(time.RFC3339Nano)
		}
	}
	return "error: " + err.Error()
}
