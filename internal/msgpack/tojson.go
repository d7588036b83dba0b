package msgpack

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the msgpack value at the start of b to dst as JSON text
// and returns the extended buffer and the rest of b. It checks nesting down
// to maxDepth levels and does not allocate beyond growing dst.
//
// Conversions: nil → null; str and bin → a JSON string (invalid UTF-8
// replaced by U+FFFD; invalid counts the replacements); NaN and ±Inf → null;
// a map key that is not a string → its JSON text as a string; Fluentd's
// EventTime (ext 0) → seconds as a number with nanoseconds ("1700000000.5");
// any other ext → its data in base64 as a string.
func AppendJSON(dst, b []byte, maxDepth int) (out, rest []byte, invalid int, err error) {
	// Check the whole value first so the converter below can trust lengths.
	n, err := Skip(b, maxDepth)
	if err != nil {
		return dst, b, 0, err
	}
	out, _, invalid = appendJSON(dst, b[:n])
	return out, b[n:], invalid, nil
}

// appendJSON converts one value known to be well formed (checked by Skip)
// and returns the new buffer, the rest of b and the invalid UTF-8 count.
func appendJSON(dst, b []byte) ([]byte, []byte, int) {
	t, head, n, _ := header(b)
	switch t {
	case Nil:
		return append(dst, "null"...), b[1:], 0
	case Bool:
		if b[0] == 0xc3 {
			return append(dst, "true"...), b[1:], 0
		}
		return append(dst, "false"...), b[1:], 0
	case Int:
		if IsUint64(b) {
			u, rest, _ := ReadUint64(b)
			return strconv.AppendUint(dst, u, 10), rest, 0
		}
		v, rest, _ := ReadInt(b)
		return strconv.AppendInt(dst, v, 10), rest, 0
	case Float:
		f, rest, _ := ReadFloat(b)
		bits := 64
		if b[0] == 0xca {
			bits = 32
		}
		return AppendJSONFloat(dst, f, bits), rest, 0
	case Str, Bin:
		end := head + int(n)
		out, inv := AppendJSONString(dst, b[head:end])
		return out, b[end:], inv
	case Array:
		rest := b[head:]
		inv := 0
		dst = append(dst, '[')
		for i := uint64(0); i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			var k int
			dst, rest, k = appendJSON(dst, rest)
			inv += k
		}
		return append(dst, ']'), rest, inv
	case Map:
		rest := b[head:]
		inv := 0
		dst = append(dst, '{')
		for i := uint64(0); i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			var k int
			switch Peek(rest) {
			case Str, Bin:
				dst, rest, k = appendJSON(dst, rest)
			default:
				// A non-string key becomes the JSON text of the key, quoted.
				var tmp [64]byte
				var txt []byte
				txt, rest, k = appendJSON(tmp[:0], rest)
				var k2 int
				dst, k2 = AppendJSONString(dst, txt)
				k += k2
			}
			inv += k
			dst = append(dst, ':')
			dst, rest, k = appendJSON(dst, rest)
			inv += k
		}
		return append(dst, '}'), rest, inv
	case Ext:
		end := head + int(n)
		typ, data := int8(b[head-1]), b[head:end]
		if typ == 0 && len(data) == 8 {
			sec := binary.BigEndian.Uint32(data)
			nsec := binary.BigEndian.Uint32(data[4:])
			dst = strconv.AppendUint(dst, uint64(sec), 10)
			if nsec != 0 {
				var frac [10]byte
				s := strconv.AppendUint(frac[:0], uint64(nsec)+1e9, 10) // "1" + 9 digits
				s = s[1:]
				for len(s) > 0 && s[len(s)-1] == '0' {
					s = s[:len(s)-1]
				}
				dst = append(dst, '.')
				dst = append(dst, s...)
			}
			return dst, b[end:], 0
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, data)
		return append(dst, '"'), b[end:], 0
	}
	// Unreachable for values that passed Skip.
	return append(dst, "null"...), b[len(b):], 0
}

// AppendJSONFloat appends f as a JSON number the way encoding/json writes
// it (shortest representation, exponent only for very small or large
// values); NaN and ±Inf, which JSON cannot express, become null. bits is 32
// or 64.
func AppendJSONFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Turn e-09 into e-9, as encoding/json does.
		n := len(dst) - start
		if n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// jsonSpecial returns a word whose lowest set bit is the high bit of the
// first byte of w (little-endian) that a JSON string cannot copy as is: a
// control character, '"', '\\' or a non-ASCII byte (to be checked as
// UTF-8); 0 when there is none. Bits above the lowest may be false
// positives (borrows), so only the lowest is used.
func jsonSpecial(w uint64) uint64 {
	ctl := (w - 0x20*lsbs) &^ w
	q := w ^ ('"' * lsbs)
	q = (q - lsbs) &^ q
	bs := w ^ ('\\' * lsbs)
	bs = (bs - lsbs) &^ bs
	return (ctl | q | bs | w) & msbs
}

// AppendJSONString appends s as a quoted JSON string. Invalid UTF-8 is
// replaced by U+FFFD; invalid counts the replaced sequences. '<', '>' and
// '&' are not escaped (the output is data, not HTML). It may use dst's
// spare capacity past the returned length as scratch space.
func AppendJSONString(dst, s []byte) (out []byte, invalid int) {
	// Work in dst's spare capacity, keeping at least the rest of s plus
	// 32 bytes free: a word is copied eight bytes at a time and each '"'
	// or '\\' in it re-copies the rest of the word one byte further on,
	// which writes up to 24 bytes past the word's start; one escape of the
	// byte-wise path takes at most six.
	dst = slices.Grow(dst, len(s)+33)
	n := len(dst)
	d := dst[:cap(dst)]
	d[n] = '"'
	n++
	for i := 0; i < len(s); {
		if len(d)-n < len(s)-i+32 { // escapes used up the slack
			d = slices.Grow(d[:n], len(s)-i+32+len(s)/8)
			d = d[:cap(d)]
		}
		if i+8 <= len(s) {
			w := binary.LittleEndian.Uint64(s[i:])
			binary.LittleEndian.PutUint64(d[n:], w)
			m := jsonSpecial(w)
			if m == 0 {
				i += 8
				n += 8
				continue
			}
			// Quotes and backslashes (a JSON line logged as text is full
			// of them) are escaped within the word: a '\\' goes before
			// the byte and the rest of the word moves one on. Bits of m
			// above the first may be false positives, so each byte is
			// checked; a control or non-ASCII byte ends the word here and
			// goes through the byte-wise path below.
			shift := 0
			k := 8
			for m != 0 {
				b := bits.TrailingZeros64(m) >> 3
				c := byte(w >> (8 * b))
				if c == '"' || c == '\\' {
					d[n+shift+b] = '\\'
					binary.LittleEndian.PutUint64(d[n+shift+b+1:], w>>(8*b))
					shift++
				} else if c < 0x20 || c >= utf8.RuneSelf {
					k = b
					break
				}
				m &= m - 1
			}
			i += k
			n += k + shift
			if k == 8 {
				continue
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != '"' && c != '\\':
				d[n] = c
				n++
			case c == '"' || c == '\\':
				d[n], d[n+1] = '\\', c
				n += 2
			case c == '\n':
				d[n], d[n+1] = '\\', 'n'
				n += 2
			case c == '\r':
				d[n], d[n+1] = '\\', 'r'
				n += 2
			case c == '\t':
				d[n], d[n+1] = '\\', 't'
				n += 2
			default:
				d[n], d[n+1], d[n+2], d[n+3], d[n+4], d[n+5] = '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf]
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += copy(d[n:], "\ufffd")
			invalid++
			i++
			continue
		}
		n += copy(d[n:], s[i:i+size])
		i += size
	}
	d[n] = '"'
	return d[:n+1], invalid
}
