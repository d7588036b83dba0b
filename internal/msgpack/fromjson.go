package msgpack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// ErrJSON is wrapped by every error AppendFromJSON returns for text that is
// not one valid JSON value.
var ErrJSON = errors.New("invalid JSON")

// AppendFromJSON appends the msgpack encoding of the JSON text src (one
// value, optionally surrounded by white space) to dst. Nesting deeper than
// maxDepth arrays and objects is an error.
//
// The mapping keeps every value exact:
//   - an object becomes a map with str keys, in the order written; a key
//     written twice keeps its first position and its last value (what
//     fluentd's Ruby Hash does);
//   - an integer becomes the smallest msgpack integer; one beyond int64 and
//     uint64 (2^64+1, say) becomes a str of its exact decimal digits, never a
//     float;
//   - a number with a fraction or exponent becomes a float64; one beyond
//     float64's range becomes a str of its text;
//   - a string becomes a str; escapes are decoded (a lone UTF-16 surrogate
//     becomes U+FFFD), other bytes are copied as they are, so invalid UTF-8
//     survives;
//   - true, false and null become bool and nil.
//
// On error dst is returned truncated to its original length. It allocates
// only to grow dst.
func AppendFromJSON(dst, src []byte, maxDepth int) ([]byte, error) {
	var c JSONConverter
	return c.Append(dst, src, maxDepth)
}

// JSONConverter is AppendFromJSON with scratch space kept between calls, so a
// hot loop does not allocate. The zero value is ready; it is not safe for
// concurrent use.
type JSONConverter struct {
	keys []int
}

// Append is AppendFromJSON.
func (c *JSONConverter) Append(dst, src []byte, maxDepth int) ([]byte, error) {
	p := jsonParser{src: src, maxDepth: maxDepth, keys: c.keys[:0]}
	defer func() { c.keys = p.keys[:0] }()
	start := len(dst)
	p.skipWS()
	out, err := p.value(dst, 0)
	if err == nil {
		p.skipWS()
		if p.pos != len(p.src) {
			err = p.errorf("unexpected %q after the value", p.src[p.pos])
		}
	}
	if err != nil {
		return dst[:start], err
	}
	return out, nil
}

type jsonParser struct {
	src      []byte
	pos      int
	maxDepth int
	// keys holds, for every object being parsed, the dst offsets of its
	// encoded keys and values (3 ints per pair: key start, value start,
	// value end), for duplicate detection.
	keys []int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrJSON, p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipWS() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(dst []byte, depth int) ([]byte, error) {
	if p.pos >= len(p.src) {
		return dst, p.errorf("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(dst, depth)
	case c == '[':
		return p.array(dst, depth)
	case c == '"':
		return p.str(dst)
	case c == 't':
		if bytes.HasPrefix(p.src[p.pos:], []byte("true")) {
			p.pos += 4
			return append(dst, 0xc3), nil
		}
	case c == 'f':
		if bytes.HasPrefix(p.src[p.pos:], []byte("false")) {
			p.pos += 5
			return append(dst, 0xc2), nil
		}
	case c == 'n':
		if bytes.HasPrefix(p.src[p.pos:], []byte("null")) {
			p.pos += 4
			return append(dst, 0xc0), nil
		}
	case c == '-' || c >= '0' && c <= '9':
		return p.number(dst)
	}
	return dst, p.errorf("unexpected %q", p.src[p.pos])
}

// container headers are written optimistically as one byte (fix map/array)
// and widened when the element count turns out larger.
func widenHeader(dst []byte, at int, n int, isMap bool) []byte {
	if n <= 15 {
		if isMap {
			dst[at] = 0x80 | byte(n)
		} else {
			dst[at] = 0x90 | byte(n)
		}
		return dst
	}
	var head [5]byte
	var h []byte
	switch {
	case n <= math.MaxUint16:
		if isMap {
			head[0] = 0xde
		} else {
			head[0] = 0xdc
		}
		binary.BigEndian.PutUint16(head[1:], uint16(n))
		h = head[:3]
	default:
		if isMap {
			head[0] = 0xdf
		} else {
			head[0] = 0xdd
		}
		binary.BigEndian.PutUint32(head[1:], uint32(n))
		h = head[:5]
	}
	extra := len(h) - 1
	dst = append(dst, h[:extra]...) // grow
	copy(dst[at+len(h):], dst[at+1:len(dst)-extra])
	copy(dst[at:], h)
	return dst
}

func (p *jsonParser) array(dst []byte, depth int) ([]byte, error) {
	if depth >= p.maxDepth {
		return dst, p.errorf("nesting deeper than %d", p.maxDepth)
	}
	p.pos++ // [
	at := len(dst)
	dst = append(dst, 0x90)
	n := 0
	p.skipWS()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return dst, nil
	}
	for {
		p.skipWS()
		var err error
		if dst, err = p.value(dst, depth+1); err != nil {
			return dst, err
		}
		n++
		p.skipWS()
		if p.pos >= len(p.src) {
			return dst, p.errorf("unexpected end of input in an array")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return widenHeader(dst, at, n, false), nil
		default:
			return dst, p.errorf("unexpected %q in an array", p.src[p.pos])
		}
	}
}

func (p *jsonParser) object(dst []byte, depth int) ([]byte, error) {
	if depth >= p.maxDepth {
		return dst, p.errorf("nesting deeper than %d", p.maxDepth)
	}
	p.pos++ // {
	at := len(dst)
	dst = append(dst, 0x80)
	base := len(p.keys)
	dup := false
	p.skipWS()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return dst, nil
	}
	for {
		p.skipWS()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			if p.pos >= len(p.src) {
				return dst, p.errorf("unexpected end of input in an object")
			}
			return dst, p.errorf("object key must be a string, not %q", p.src[p.pos])
		}
		kstart := len(dst)
		var err error
		if dst, err = p.str(dst); err != nil {
			return dst, err
		}
		if !dup && p.isDup(dst, base, kstart) {
			dup = true
		}
		p.skipWS()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return dst, p.errorf("missing ':' after an object key")
		}
		p.pos++
		p.skipWS()
		vstart := len(dst)
		if dst, err = p.value(dst, depth+1); err != nil {
			return dst, err
		}
		p.keys = append(p.keys, kstart, vstart, len(dst))
		p.skipWS()
		if p.pos >= len(p.src) {
			return dst, p.errorf("unexpected end of input in an object")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			n := (len(p.keys) - base) / 3
			if dup {
				dst, n = p.dedup(dst, at+1, base)
			}
			p.keys = p.keys[:base]
			return widenHeader(dst, at, n, true), nil
		default:
			return dst, p.errorf("unexpected %q in an object", p.src[p.pos])
		}
	}
}

// isDup reports whether the key encoded at dst[kstart:] equals an earlier
// key of the object whose pairs start at p.keys[base].
func (p *jsonParser) isDup(dst []byte, base, kstart int) bool {
	k := dst[kstart:]
	for i := base; i < len(p.keys); i += 3 {
		prev := dst[p.keys[i]:p.keys[i+1]]
		if len(prev) == len(k) && prev[len(prev)-1] == k[len(k)-1] && bytes.Equal(prev, k) {
			return true
		}
	}
	return false
}

// dedup rewrites the pairs of an object (from dst[from:]) so each key
// appears once, at its first position, with its last value.
func (p *jsonParser) dedup(dst []byte, from, base int) ([]byte, int) {
	pairs := p.keys[base:]
	n := len(pairs) / 3
	var out []byte
	kept := 0
	for i := 0; i < n; i++ {
		k := dst[pairs[3*i]:pairs[3*i+1]]
		first, last := -1, i
		for j := 0; j < n; j++ {
			if bytes.Equal(dst[pairs[3*j]:pairs[3*j+1]], k) {
				if first < 0 {
					first = j
				}
				last = j
			}
		}
		if first != i {
			continue
		}
		out = append(out, k...)
		out = append(out, dst[pairs[3*last+1]:pairs[3*last+2]]...)
		kept++
	}
	dst = append(dst[:from], out...)
	return dst, kept
}

func (p *jsonParser) number(dst []byte) ([]byte, error) {
	start := p.pos
	i := p.pos
	s := p.src
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		p.pos = i
		return dst, p.errorf("unexpected end of input in a number")
	}
	switch {
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return dst, p.errorf("invalid number")
	}
	isFloat := false
	if i < len(s) && s[i] == '.' {
		isFloat = true
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return dst, p.errorf("invalid number: no digits after '.'")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		isFloat = true
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return dst, p.errorf("invalid number: no digits in the exponent")
		}
	}
	p.pos = i
	text := s[start:i]
	if !isFloat {
		neg := text[0] == '-'
		digits := text
		if neg {
			digits = text[1:]
		}
		if len(digits) <= 18 {
			var v int64
			for _, c := range digits {
				v = v*10 + int64(c-'0')
			}
			if neg {
				v = -v
			}
			return AppendInt(dst, v), nil
		}
		if neg {
			if v, err := strconv.ParseInt(unsafe.String(&text[0], len(text)), 10, 64); err == nil {
				return AppendInt(dst, v), nil
			}
		} else if v, err := strconv.ParseUint(unsafe.String(&digits[0], len(digits)), 10, 64); err == nil {
			return AppendUint(dst, v), nil
		}
		return AppendStringBytes(dst, text), nil
	}
	// unsafe.String: ParseFloat keeps its argument only in the error, which
	// is dropped here; converting would allocate on every float.
	f, err := strconv.ParseFloat(unsafe.String(&text[0], len(text)), 64)
	if err != nil { // out of range: keep the text exactly
		return AppendStringBytes(dst, text), nil
	}
	return AppendFloat64(dst, f), nil
}

// str parses a JSON string at p.pos and appends it as a msgpack str.
func (p *jsonParser) str(dst []byte) ([]byte, error) {
	p.pos++ // opening quote
	s := p.src
	i := p.pos
	esc := false
	// Fast path: no backslash before the closing quote.
	if q := bytes.IndexByte(s[i:], '"'); q >= 0 && bytes.IndexByte(s[i:i+q], '\\') < 0 {
		p.pos = i + q + 1
		return AppendStringBytes(dst, s[i:i+q]), nil
	}
	for i < len(s) {
		c := s[i]
		if c == '"' {
			break
		}
		if c == '\\' {
			esc = true
			i++
		}
		i++
	}
	if i >= len(s) {
		p.pos = len(s)
		return dst, p.errorf("unterminated string")
	}
	raw := s[p.pos:i]
	p.pos = i + 1
	if !esc {
		return AppendStringBytes(dst, raw), nil
	}
	// The decoded text is never longer than raw: reserve raw's header class,
	// decode, and narrow the header if needed.
	at := len(dst)
	dst = appendStrHeader(dst, len(raw))
	hlen := len(dst) - at
	body := len(dst)
	for j := 0; j < len(raw); j++ {
		c := raw[j]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		j++
		switch raw[j] {
		case '"', '\\', '/':
			dst = append(dst, raw[j])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n, ok := hex4(raw[j+1:])
			if !ok {
				p.pos = p.pos - 1 - len(raw) + j
				return dst[:at], p.errorf("invalid \\u escape")
			}
			j += n
			if utf16.IsSurrogate(r) {
				r2, n2, ok2 := rune(0), 0, false
				if j+2 < len(raw) && raw[j+1] == '\\' && raw[j+2] == 'u' {
					r2, n2, ok2 = hex4(raw[j+3:])
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					j += 2 + n2
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			p.pos = p.pos - 1 - len(raw) + j
			return dst[:at], p.errorf("invalid escape '\\%c'", raw[j])
		}
	}
	n := len(dst) - body
	var head [5]byte
	h := appendStrHeader(head[:0], n)
	if len(h) != hlen {
		copy(dst[at+len(h):], dst[body:])
		dst = dst[:at+len(h)+n]
	}
	copy(dst[at:], h)
	return dst, nil
}

func hex4(b []byte) (rune, int, bool) {
	if len(b) < 4 {
		return 0, 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0, false
		}
	}
	return r, 4, true
}
