package forward

import (
	"errors"
	"fmt"

	"github.com/marutalog/maruta/internal/msgpack"
)

// errFrameInvalid, errFrameTooLarge and errFrameTooDeep are the framer's
// verdicts on a stream that cannot go on: the connection is closed.
var (
	errFrameInvalid  = errors.New("invalid msgpack")
	errFrameTooLarge = errors.New("request larger than chunk_size_limit")
	errFrameTooDeep  = errors.New("request nested deeper than max_depth")
)

// framer finds where one top-level msgpack value (one Forward request) ends
// in a byte stream that arrives in pieces. It keeps its position and the
// open containers between calls, so every byte is looked at once however the
// request is split into reads: framing is O(n) in the request size.
//
// Declared lengths are never used to allocate: a str, bin or ext only moves
// the position forward, and an array or map only stores a count. A declared
// length that cannot fit under the size limit is rejected at once.
type framer struct {
	limit    int // largest request in bytes
	maxDepth int // most nested arrays/maps

	pos   int      // offset of the next head to parse, from the start of the request
	stack []uint64 // items left in each open array/map, innermost last
	done  bool     // the top-level value is complete once pos bytes are present
}

func newFramer(limit, maxDepth int) framer {
	return framer{limit: limit, maxDepth: maxDepth, stack: make([]uint64, 0, 16)}
}

// reset prepares the framer for the next request.
func (f *framer) reset() {
	f.pos = 0
	f.stack = f.stack[:0]
	f.done = false
}

// next reports the length of the request that starts at b[0], or 0 when b
// does not hold all of it yet. b must start with the same bytes on every
// call until next returns a length or an error (more bytes may follow).
func (f *framer) next(b []byte) (int, error) {
	for {
		if f.done || f.pos >= len(b) {
			if f.done && f.pos <= len(b) {
				return f.pos, nil
			}
			return 0, nil
		}
		t, head, n, err := msgpack.ReadHeader(b[f.pos:])
		if err != nil {
			if err == msgpack.ErrShort {
				return 0, nil
			}
			return 0, fmt.Errorf("%w at offset %d: 0x%02x", errFrameInvalid, f.pos, b[f.pos])
		}
		// Room left under the limit after this head; a request may be exactly
		// limit bytes long.
		room := uint64(f.limit - f.pos - head)
		if f.pos+head > f.limit {
			return 0, errFrameTooLarge
		}
		f.pos += head
		switch t {
		case msgpack.Str, msgpack.Bin, msgpack.Ext:
			if n > room {
				return 0, errFrameTooLarge
			}
			f.pos += int(n)
		case msgpack.Array, msgpack.Map:
			items := n
			if t == msgpack.Map {
				items = 2 * n
			}
			if items > room { // every item takes at least one byte
				return 0, errFrameTooLarge
			}
			if len(f.stack) >= f.maxDepth {
				return 0, errFrameTooDeep
			}
			if items > 0 {
				f.stack = append(f.stack, items)
				continue
			}
		}
		// One value is complete: close every container it completes.
		for {
			k := len(f.stack) - 1
			if k < 0 {
				f.done = true
				break
			}
			f.stack[k]--
			if f.stack[k] > 0 {
				break
			}
			f.stack = f.stack[:k]
		}
	}
}
