package msgpack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShort reports that the input ends inside a value.
var ErrShort = errors.New("msgpack: unexpected end of data")

// ErrDepth reports nesting deeper than the caller allows.
var ErrDepth = errors.New("msgpack: nesting too deep")

// TypeError reports a value of another type than the one asked for.
type TypeError struct {
	Want string
	Got  Type
}

func (e *TypeError) Error() string { return fmt.Sprintf("msgpack: want %s, got %s", e.Want, e.Got) }

// Type is the kind of a msgpack value.
type Type uint8

// Value kinds.
const (
	Invalid Type = iota
	Nil
	Bool
	Int // any integer encoding (positive or negative fixint, int8..int64, uint8..uint64)
	Float
	Str
	Bin
	Array
	Map
	Ext
)

func (t Type) String() string {
	return [...]string{"invalid", "nil", "bool", "int", "float", "str", "bin", "array", "map", "ext"}[t]
}

// TypeOf returns the type of the value starting with byte c. 0xc1 is Invalid.
func TypeOf(c byte) Type {
	switch {
	case c <= 0x7f || c >= 0xe0:
		return Int
	case c <= 0x8f:
		return Map
	case c <= 0x9f:
		return Array
	case c <= 0xbf:
		return Str
	}
	switch c {
	case 0xc0:
		return Nil
	case 0xc2, 0xc3:
		return Bool
	case 0xc4, 0xc5, 0xc6:
		return Bin
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return Ext
	case 0xca, 0xcb:
		return Float
	case 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
		return Int
	case 0xd9, 0xda, 0xdb:
		return Str
	case 0xdc, 0xdd:
		return Array
	case 0xde, 0xdf:
		return Map
	}
	return Invalid
}

// Peek returns the type of the value at the start of b, or Invalid when b is
// empty.
func Peek(b []byte) Type {
	if len(b) == 0 {
		return Invalid
	}
	return TypeOf(b[0])
}

// header decodes the head of the value at b[0]: its type, the size of the
// head in bytes, and the length that follows it (bytes for str/bin/ext,
// elements for array, pairs for map, 0 otherwise). For ext the type byte is
// part of the head.
func header(b []byte) (t Type, head int, n uint64, err error) {
	if len(b) == 0 {
		return Invalid, 0, 0, ErrShort
	}
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0:
		return Int, 1, 0, nil
	case c <= 0x8f:
		return Map, 1, uint64(c & 0x0f), nil
	case c <= 0x9f:
		return Array, 1, uint64(c & 0x0f), nil
	case c <= 0xbf:
		return Str, 1, uint64(c & 0x1f), nil
	}
	need := func(k int) error {
		if len(b) < k {
			return ErrShort
		}
		return nil
	}
	switch c {
	case 0xc0:
		return Nil, 1, 0, nil
	case 0xc2, 0xc3:
		return Bool, 1, 0, nil
	case 0xcc, 0xd0:
		return Int, 2, 0, need(2)
	case 0xcd, 0xd1:
		return Int, 3, 0, need(3)
	case 0xce, 0xd2:
		return Int, 5, 0, need(5)
	case 0xcf, 0xd3:
		return Int, 9, 0, need(9)
	case 0xca:
		return Float, 5, 0, need(5)
	case 0xcb:
		return Float, 9, 0, need(9)
	case 0xc4, 0xd9:
		if err := need(2); err != nil {
			return Invalid, 0, 0, err
		}
		return typeOfLen(c), 2, uint64(b[1]), nil
	case 0xc5, 0xda:
		if err := need(3); err != nil {
			return Invalid, 0, 0, err
		}
		return typeOfLen(c), 3, uint64(binary.BigEndian.Uint16(b[1:])), nil
	case 0xc6, 0xdb:
		if err := need(5); err != nil {
			return Invalid, 0, 0, err
		}
		return typeOfLen(c), 5, uint64(binary.BigEndian.Uint32(b[1:])), nil
	case 0xdc:
		if err := need(3); err != nil {
			return Invalid, 0, 0, err
		}
		return Array, 3, uint64(binary.BigEndian.Uint16(b[1:])), nil
	case 0xdd:
		if err := need(5); err != nil {
			return Invalid, 0, 0, err
		}
		return Array, 5, uint64(binary.BigEndian.Uint32(b[1:])), nil
	case 0xde:
		if err := need(3); err != nil {
			return Invalid, 0, 0, err
		}
		return Map, 3, uint64(binary.BigEndian.Uint16(b[1:])), nil
	case 0xdf:
		if err := need(5); err != nil {
			return Invalid, 0, 0, err
		}
		return Map, 5, uint64(binary.BigEndian.Uint32(b[1:])), nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return Ext, 2, 1 << (c - 0xd4), need(2)
	case 0xc7:
		if err := need(3); err != nil {
			return Invalid, 0, 0, err
		}
		return Ext, 3, uint64(b[1]), nil
	case 0xc8:
		if err := need(4); err != nil {
			return Invalid, 0, 0, err
		}
		return Ext, 4, uint64(binary.BigEndian.Uint16(b[1:])), nil
	case 0xc9:
		if err := need(6); err != nil {
			return Invalid, 0, 0, err
		}
		return Ext, 6, uint64(binary.BigEndian.Uint32(b[1:])), nil
	}
	return Invalid, 0, 0, fmt.Errorf("msgpack: invalid byte 0x%02x", c)
}

func typeOfLen(c byte) Type {
	if c >= 0xd9 {
		return Str
	}
	return Bin
}

// Skip returns the length in bytes of the value at the start of b, checking
// its structure down to maxDepth levels of arrays and maps. It does not
// allocate and never trusts a declared count beyond the bytes present.
func Skip(b []byte, maxDepth int) (int, error) {
	return skip(b, 0, maxDepth)
}

func skip(b []byte, off, depth int) (int, error) {
	t, head, n, err := header(b[off:])
	if err != nil {
		return 0, err
	}
	end := off + head
	switch t {
	case Str, Bin, Ext:
		if uint64(len(b)-end) < n {
			return 0, ErrShort
		}
		return end + int(n) - off, nil
	case Array, Map:
		if depth <= 0 {
			return 0, ErrDepth
		}
		items := n
		if t == Map {
			items = 2 * n
		}
		for ; items > 0; items-- {
			if end >= len(b) {
				return 0, ErrShort
			}
			// Fast paths for what records are mostly made of: small ints,
			// nil, bools and short strings (same results as skip).
			switch c := b[end]; {
			case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
				end++
				continue
			case c >= 0xa0 && c <= 0xbf:
				if len(b)-end-1 < int(c&0x1f) {
					return 0, ErrShort
				}
				end += 1 + int(c&0x1f)
				continue
			case c == 0xd9:
				if len(b)-end < 2 || len(b)-end-2 < int(b[end+1]) {
					return 0, ErrShort
				}
				end += 2 + int(b[end+1])
				continue
			}
			k, err := skip(b, end, depth-1)
			if err != nil {
				return 0, err
			}
			end += k
		}
		return end - off, nil
	}
	if end > len(b) {
		return 0, ErrShort
	}
	return head, nil
}

// ReadRaw splits off the whole value at the start of b (any type).
func ReadRaw(b []byte, maxDepth int) (v, rest []byte, err error) {
	n, err := Skip(b, maxDepth)
	if err != nil {
		return nil, b, err
	}
	return b[:n], b[n:], nil
}

// ReadArrayHeader reads an array header and returns its element count.
func ReadArrayHeader(b []byte) (n int, rest []byte, err error) {
	t, head, cnt, err := header(b)
	if err != nil {
		return 0, b, err
	}
	if t != Array {
		return 0, b, &TypeError{"array", t}
	}
	return int(cnt), b[head:], nil
}

// ReadMapHeader reads a map header and returns its pair count.
func ReadMapHeader(b []byte) (n int, rest []byte, err error) {
	t, head, cnt, err := header(b)
	if err != nil {
		return 0, b, err
	}
	if t != Map {
		return 0, b, &TypeError{"map", t}
	}
	return int(cnt), b[head:], nil
}

// ReadBytes reads a str or bin value and returns its bytes (a sub-slice of
// b) and whether it was bin.
func ReadBytes(b []byte) (v []byte, isBin bool, rest []byte, err error) {
	t, head, n, err := header(b)
	if err != nil {
		return nil, false, b, err
	}
	if t != Str && t != Bin {
		return nil, false, b, &TypeError{"str or bin", t}
	}
	if uint64(len(b)-head) < n {
		return nil, false, b, ErrShort
	}
	end := head + int(n)
	return b[head:end:end], t == Bin, b[end:], nil
}

// ReadStr reads a str value (not bin).
func ReadStr(b []byte) (v, rest []byte, err error) {
	if t := Peek(b); t != Str {
		if t == Invalid && len(b) == 0 {
			return nil, b, ErrShort
		}
		return nil, b, &TypeError{"str", t}
	}
	v, _, rest, err = ReadBytes(b)
	return v, rest, err
}

// ReadInt reads any integer encoding as int64. A uint64 above MaxInt64 is an
// error.
func ReadInt(b []byte) (int64, []byte, error) {
	t, head, _, err := header(b)
	if err != nil {
		return 0, b, err
	}
	if t != Int {
		return 0, b, &TypeError{"int", t}
	}
	c := b[0]
	switch {
	case c <= 0x7f:
		return int64(c), b[1:], nil
	case c >= 0xe0:
		return int64(int8(c)), b[1:], nil
	}
	var v int64
	switch c {
	case 0xcc:
		v = int64(b[1])
	case 0xcd:
		v = int64(binary.BigEndian.Uint16(b[1:]))
	case 0xce:
		v = int64(binary.BigEndian.Uint32(b[1:]))
	case 0xcf:
		u := binary.BigEndian.Uint64(b[1:])
		if u > math.MaxInt64 {
			return 0, b, fmt.Errorf("msgpack: uint64 %d overflows int64", u)
		}
		v = int64(u)
	case 0xd0:
		v = int64(int8(b[1]))
	case 0xd1:
		v = int64(int16(binary.BigEndian.Uint16(b[1:])))
	case 0xd2:
		v = int64(int32(binary.BigEndian.Uint32(b[1:])))
	case 0xd3:
		v = int64(binary.BigEndian.Uint64(b[1:]))
	}
	return v, b[head:], nil
}

// ReadUint64 reads an integer that is not negative, up to MaxUint64.
func ReadUint64(b []byte) (uint64, []byte, error) {
	if len(b) > 0 && b[0] == 0xcf {
		if len(b) < 9 {
			return 0, b, ErrShort
		}
		return binary.BigEndian.Uint64(b[1:]), b[9:], nil
	}
	v, rest, err := ReadInt(b)
	if err != nil {
		return 0, b, err
	}
	if v < 0 {
		return 0, b, fmt.Errorf("msgpack: negative integer %d", v)
	}
	return uint64(v), rest, nil
}

// IsUint64 reports whether the value at b is a uint64 encoding (0xcf), the
// only one whose value may not fit int64.
func IsUint64(b []byte) bool { return len(b) > 0 && b[0] == 0xcf }

// ReadFloat reads a float32 or float64.
func ReadFloat(b []byte) (float64, []byte, error) {
	t, head, _, err := header(b)
	if err != nil {
		return 0, b, err
	}
	if t != Float {
		return 0, b, &TypeError{"float", t}
	}
	if b[0] == 0xca {
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:]))), b[head:], nil
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b[1:])), b[head:], nil
}

// ReadBool reads a boolean.
func ReadBool(b []byte) (bool, []byte, error) {
	if len(b) == 0 {
		return false, b, ErrShort
	}
	switch b[0] {
	case 0xc2:
		return false, b[1:], nil
	case 0xc3:
		return true, b[1:], nil
	}
	return false, b, &TypeError{"bool", TypeOf(b[0])}
}

// ReadExt reads an extension value: its type and data.
func ReadExt(b []byte) (typ int8, data, rest []byte, err error) {
	t, head, n, err := header(b)
	if err != nil {
		return 0, nil, b, err
	}
	if t != Ext {
		return 0, nil, b, &TypeError{"ext", t}
	}
	if uint64(len(b)-head) < n {
		return 0, nil, b, ErrShort
	}
	end := head + int(n)
	return int8(b[head-1]), b[head:end:end], b[end:], nil
}

// MapGet scans the map at the start of m for a str (or bin) key equal to key
// and returns its raw value. found is false when the key is absent. The map
// must be well-formed down to maxDepth.
func MapGet(m []byte, key string, maxDepth int) (val []byte, found bool, err error) {
	n, b, err := ReadMapHeader(m)
	if err != nil {
		return nil, false, err
	}
	for i := 0; i < n; i++ {
		var k []byte
		if t := Peek(b); t == Str || t == Bin {
			k, _, b, err = ReadBytes(b)
		} else {
			_, b, err = ReadRaw(b, maxDepth)
		}
		if err != nil {
			return nil, false, err
		}
		v, rest, err := ReadRaw(b, maxDepth)
		if err != nil {
			return nil, false, err
		}
		if k != nil && string(k) == key {
			return v, true, nil
		}
		b = rest
	}
	return nil, false, nil
}

// MapEach calls fn for every pair of the map at the start of m, in order,
// with the raw key and value. It stops at the first error fn returns.
func MapEach(m []byte, maxDepth int, fn func(k, v []byte) error) error {
	n, b, err := ReadMapHeader(m)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		k, rest, err := ReadRaw(b, maxDepth)
		if err != nil {
			return err
		}
		v, rest, err := ReadRaw(rest, maxDepth)
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
		b = rest
	}
	return nil
}
