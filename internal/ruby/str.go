package ruby

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/marutalog/maruta/internal/msgpack"
)

// maxDepth bounds msgpack nesting when values are read.
const maxDepth = 100

// Values are turned into text the way fluentd's plugins do it, with Ruby's
// to_s: nil is "", booleans and integers as written, floats as Ruby prints
// them (1.0, 1.0e+20, 1.0e-05), strings as their bytes, arrays and hashes as
// Ruby's inspect ({"a"=>1, "b"=>[nil, true]}; the classic form before Ruby
// 3.4 added spaces around =>).

// AppendToS appends Ruby's to_s of the msgpack value v.
func AppendToS(dst, v []byte) []byte {
	switch msgpack.Peek(v) {
	case msgpack.Nil:
		return dst
	case msgpack.Str, msgpack.Bin:
		b, _, _, err := msgpack.ReadBytes(v)
		if err != nil {
			return dst
		}
		return append(dst, b...)
	case msgpack.Ext:
		typ, data, _, err := msgpack.ReadExt(v)
		if err == nil && typ == 0 && len(data) == 8 { // EventTime#to_s: seconds
			return strconv.AppendUint(dst, uint64(binary.BigEndian.Uint32(data)), 10)
		}
	}
	return AppendInspect(dst, v)
}

// AppendInspect appends Ruby's inspect of the msgpack value v.
func AppendInspect(dst, v []byte) []byte {
	switch msgpack.Peek(v) {
	case msgpack.Nil:
		return append(dst, "nil"...)
	case msgpack.Bool:
		b, _, _ := msgpack.ReadBool(v)
		return strconv.AppendBool(dst, b)
	case msgpack.Int:
		if msgpack.IsUint64(v) {
			u, _, _ := msgpack.ReadUint64(v)
			return strconv.AppendUint(dst, u, 10)
		}
		i, _, _ := msgpack.ReadInt(v)
		return strconv.AppendInt(dst, i, 10)
	case msgpack.Float:
		f, _, _ := msgpack.ReadFloat(v)
		return appendRubyFloat(dst, f)
	case msgpack.Str, msgpack.Bin:
		b, isBin, _, _ := msgpack.ReadBytes(v)
		return appendRubyStringInspect(dst, b, isBin)
	case msgpack.Array:
		n, rest, err := msgpack.ReadArrayHeader(v)
		if err != nil {
			return dst
		}
		dst = append(dst, '[')
		for i := 0; i < n; i++ {
			el, r, err := msgpack.ReadRaw(rest, maxDepth)
			if err != nil {
				break
			}
			rest = r
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = AppendInspect(dst, el)
		}
		return append(dst, ']')
	case msgpack.Map:
		n, rest, err := msgpack.ReadMapHeader(v)
		if err != nil {
			return dst
		}
		dst = append(dst, '{')
		for i := 0; i < n; i++ {
			k, r, err := msgpack.ReadRaw(rest, maxDepth)
			if err != nil {
				break
			}
			val, r2, err := msgpack.ReadRaw(r, maxDepth)
			if err != nil {
				break
			}
			rest = r2
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = AppendInspect(dst, k)
			dst = append(dst, "=>"...)
			dst = AppendInspect(dst, val)
		}
		return append(dst, '}')
	case msgpack.Ext:
		typ, data, _, err := msgpack.ReadExt(v)
		if err != nil {
			return dst
		}
		if typ == 0 && len(data) == 8 {
			return strconv.AppendUint(dst, uint64(binary.BigEndian.Uint32(data)), 10)
		}
		dst = append(dst, "#<struct MessagePack::ExtensionValue type="...)
		dst = strconv.AppendInt(dst, int64(typ), 10)
		dst = append(dst, ", payload="...)
		dst = appendRubyStringInspect(dst, data, true)
		return append(dst, '>')
	}
	return dst
}

// appendRubyFloat appends Float#to_s: the shortest digits that read back
// to f; plain notation for 1e-4 <= |f| < 1e16, else d.ddde+XX.
func appendRubyFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // -d.ddde±XX
	neg := e[0] == '-'
	if neg {
		e = e[1:]
		dst = append(dst, '-')
	}
	ePos := 0
	for ePos < len(e) && e[ePos] != 'e' {
		ePos++
	}
	mant := e[:ePos]
	exp, _ := strconv.Atoi(string(e[ePos+1:]))
	var digits []byte
	digits = append(digits, mant[0])
	if len(mant) > 2 {
		digits = append(digits, mant[2:]...)
	}
	for len(digits) > 1 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	decpt := exp + 1 // value = 0.digits × 10^decpt
	switch {
	case decpt > 0 && decpt <= 16:
		if len(digits) <= decpt {
			dst = append(dst, digits...)
			for i := len(digits); i < decpt; i++ {
				dst = append(dst, '0')
			}
			return append(dst, ".0"...)
		}
		dst = append(dst, digits[:decpt]...)
		dst = append(dst, '.')
		return append(dst, digits[decpt:]...)
	case decpt <= 0 && decpt > -4:
		dst = append(dst, "0."...)
		for i := 0; i < -decpt; i++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[0], '.')
	if len(digits) > 1 {
		dst = append(dst, digits[1:]...)
	} else {
		dst = append(dst, '0')
	}
	dst = append(dst, 'e')
	x := decpt - 1
	if x < 0 {
		dst = append(dst, '-')
		x = -x
	} else {
		dst = append(dst, '+')
	}
	if x < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(x), 10)
}

// appendRubyStringInspect appends String#inspect. binary selects an
// ASCII-8BIT string (bytes >= 0x80 as \xNN) rather than UTF-8.
func appendRubyStringInspect(dst, s []byte, binary bool) []byte {
	const hex = "0123456789ABCDEF"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
			i++
			continue
		case '\n':
			dst = append(dst, `\n`...)
			i++
			continue
		case '\t':
			dst = append(dst, `\t`...)
			i++
			continue
		case '\r':
			dst = append(dst, `\r`...)
			i++
			continue
		case '\f':
			dst = append(dst, `\f`...)
			i++
			continue
		case '\v':
			dst = append(dst, `\v`...)
			i++
			continue
		case '\b':
			dst = append(dst, `\b`...)
			i++
			continue
		case '\a':
			dst = append(dst, `\a`...)
			i++
			continue
		case 0x1b:
			dst = append(dst, `\e`...)
			i++
			continue
		case '#':
			if i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '$' || s[i+1] == '@') {
				dst = append(dst, '\\', '#')
			} else {
				dst = append(dst, '#')
			}
			i++
			continue
		}
		if c < 0x20 || c == 0x7f {
			if binary || c == 0x7f {
				dst = append(dst, '\\', 'x', hex[c>>4], hex[c&15])
			} else {
				dst = append(dst, `\u00`...)
				dst = append(dst, hex[c>>4], hex[c&15])
			}
			i++
			continue
		}
		if c < 0x80 {
			dst = append(dst, c)
			i++
			continue
		}
		if binary {
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&15])
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&15])
			i++
			continue
		}
		if unicode.IsPrint(r) {
			dst = append(dst, s[i:i+size]...)
		} else {
			dst = append(dst, `\u`...)
			if r > 0xffff {
				dst = append(dst, '{')
				dst = strconv.AppendUint(dst, uint64(r), 16)
				dst = append(dst, '}')
			} else {
				var h [4]byte
				for k := 3; k >= 0; k-- {
					h[k] = hex[r&15]
					r >>= 4
				}
				dst = append(dst, h[:]...)
			}
		}
		i += size
	}
	return append(dst, '"')
}

// AppendScrub appends s with every invalid UTF-8 sequence replaced by '?'
// (Ruby's String#scrub('?')): an incomplete multi-byte sequence counts as
// one invalid sequence.
func AppendScrub(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r != utf8.RuneError || size > 1 {
			dst = append(dst, s[i:i+size]...)
			i += size
			continue
		}
		// Skip the longest prefix of a valid sequence (lead byte plus the
		// continuation bytes that could follow it).
		n := 1
		if need := seqLen(c); need > 1 {
			for n < need && i+n < len(s) && s[i+n]&0xc0 == 0x80 && validSecond(c, s[i+1], n) {
				n++
			}
		}
		dst = append(dst, '?')
		i += n
	}
	return dst
}

func seqLen(c byte) int {
	switch {
	case c >= 0xc2 && c <= 0xdf:
		return 2
	case c >= 0xe0 && c <= 0xef:
		return 3
	case c >= 0xf0 && c <= 0xf4:
		return 4
	}
	return 1
}

// validSecond checks the restricted ranges for the second byte of E0, ED,
// F0 and F4 sequences (only when n == 1, i.e. checking the second byte).
func validSecond(lead, second byte, n int) bool {
	if n != 1 {
		return true
	}
	switch lead {
	case 0xe0:
		return second >= 0xa0
	case 0xed:
		return second <= 0x9f
	case 0xf0:
		return second >= 0x90
	case 0xf4:
		return second <= 0x8f
	}
	return true
}

// ToI is String#to_i: leading white space, an optional sign, digits
// (underscores allowed between them); 0 when there are none.
func ToI(s []byte) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var v int64
	prevDigit := false
	for ; i < len(s); i++ {
		c := s[i]
		if c == '_' && prevDigit && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		prevDigit = true
		if v > (math.MaxInt64-9)/10 {
			v = math.MaxInt64 // Ruby would make a Bignum
			continue
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		return -v
	}
	return v
}

// ToF is String#to_f: the longest leading float, 0.0 when none.
func ToF(s []byte) float64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	start := i
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '_' && n > 0 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9') {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return 0
	}
	end := i
	if i+1 < len(s) && s[i] == '.' && s[i+1] >= '0' && s[i+1] <= '9' {
		i++
		digits()
		end = i
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() > 0 {
			end = i
		} else {
			i = j
		}
	}
	txt := strings.ReplaceAll(string(s[start:end]), "_", "")
	f, err := strconv.ParseFloat(txt, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f
		}
		return 0
	}
	return f
}
