package dedup

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/marutalog/maruta/internal/msgpack"
)

// Mark names the chunk ids of one batch of acked Forward requests (one
// Consume of the Forward server) where its events are stored: a buffer
// writes one into every frame of a marked batch, and the dedup record
// keeps the marks of chunks that left their buffer. The bytes are
// specified in buffer/FORMAT.md, "Dedup marks".
type Mark struct {
	Batch uint64   // random, the same in every mark of the batch
	At    int64    // when the batch was handed on, Unix milliseconds
	IDs   [][]byte // chunk option values, raw msgpack
	// Part of Parts: which delivery of the batch to a buffer this is
	// (Parts 0: a record entry complete by itself).
	Part, Parts int
	// Frame of Frames: which frame of the delivery.
	Frame, Frames int
}

// AppendMark appends m's encoding (a msgpack map) to dst. Frame and Frames
// are written as uint32 whatever their value, so the marks of a batch's
// frames all have one size, known before the frames are counted.
func AppendMark(dst []byte, m *Mark) []byte {
	dst = msgpack.AppendMapHeader(dst, 7)
	dst = msgpack.AppendString(dst, "b")
	dst = msgpack.AppendUint(dst, m.Batch)
	dst = msgpack.AppendString(dst, "t")
	dst = msgpack.AppendInt(dst, m.At)
	dst = msgpack.AppendString(dst, "ids")
	dst = msgpack.AppendArrayHeader(dst, len(m.IDs))
	for _, id := range m.IDs {
		dst = append(dst, id...)
	}
	dst = msgpack.AppendString(dst, "p")
	dst = msgpack.AppendInt(dst, int64(m.Part))
	dst = msgpack.AppendString(dst, "n")
	dst = msgpack.AppendInt(dst, int64(m.Parts))
	dst = msgpack.AppendString(dst, "f")
	dst = binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(m.Frame))
	dst = msgpack.AppendString(dst, "m")
	return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(m.Frames))
}

// IsMark reports whether b starts with a mark rather than a Forward
// message (a msgpack map head, FORMAT.md).
func IsMark(b []byte) bool { return len(b) > 0 && msgpack.Peek(b) == msgpack.Map }

// maxIDDepth bounds the nesting of an id value (ids are str or bin).
const maxIDDepth = 8

// errMark marks a mark that does not follow FORMAT.md.
var errMark = errors.New("bad dedup mark")

// ParseMark reads the mark at the start of b into m and returns the bytes
// after it. m.IDs reuses its backing array and points into b.
func ParseMark(b []byte, m *Mark) ([]byte, error) {
	raw, rest, err := msgpack.ReadRaw(b, maxIDDepth+2)
	if err != nil {
		return b, fmt.Errorf("%w: %w", errMark, err)
	}
	ids := m.IDs[:0]
	*m = Mark{}
	var seen uint8
	err = msgpack.MapEach(raw, maxIDDepth+1, func(k, v []byte) error {
		key, _, err := msgpack.ReadStr(k)
		if err != nil {
			return nil // not a str key: ignored, like unknown keys
		}
		num := func(bit uint8) (int, error) {
			n, _, err := msgpack.ReadInt(v)
			if err != nil || n < 0 || n > 1<<31 {
				return 0, fmt.Errorf("%s is not a count", key)
			}
			seen |= bit
			return int(n), nil
		}
		switch string(key) {
		case "b":
			m.Batch, _, err = msgpack.ReadUint64(v)
			seen |= 1
		case "t":
			m.At, _, err = msgpack.ReadInt(v)
			seen |= 2
		case "ids":
			var n int
			n, v, err = msgpack.ReadArrayHeader(v)
			for i := 0; i < n && err == nil; i++ {
				var id []byte
				id, v, err = msgpack.ReadRaw(v, maxIDDepth)
				ids = append(ids, id)
			}
			seen |= 4
		case "p":
			m.Part, err = num(8)
		case "n":
			m.Parts, err = num(16)
		case "f":
			m.Frame, err = num(32)
		case "m":
			m.Frames, err = num(64)
		}
		return err
	})
	m.IDs = ids
	if err != nil {
		return b, fmt.Errorf("%w: %w", errMark, err)
	}
	if seen != 127 {
		return b, fmt.Errorf("%w: a key is missing", errMark)
	}
	if m.Parts > 0 && (m.Part < 1 || m.Part > m.Parts || m.Frame < 1 || m.Frame > m.Frames) {
		return b, fmt.Errorf("%w: part %d of %d, frame %d of %d", errMark, m.Part, m.Parts, m.Frame, m.Frames)
	}
	return rest, nil
}
