package forward

import (
	"encoding/binary"
	"math"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// Bounds of whole seconds that fit event.Time (int64 nanoseconds).
const (
	maxSec = math.MaxInt64/1_000_000_000 - 1
	minSec = math.MinInt64/1_000_000_000 + 1
)

// EventTimeExt is the msgpack ext type of Fluentd's EventTime;
// TimestampExt is msgpack's own timestamp extension.
const (
	EventTimeExt = 0
	TimestampExt = -1
)

// readTime reads the event time at the start of b: EventTime (ext 0, eight
// bytes as fixext8 or ext8: uint32 seconds, uint32 nanoseconds), an integer
// or float number of seconds, msgpack's timestamp (ext -1, all three
// lengths), nil, or Fluent Bit's v1.5 [time, {metadata}] pair (the metadata
// is dropped). A time whose whole seconds are 0, and nil, mean "now", as in
// fluentd.
//
// ok is false for a value that is well-formed msgpack but not a valid time;
// rest then still points after it. err is set only when b is not
// well-formed msgpack (down to depth levels).
func readTime(b []byte, now event.Time, depth int) (t event.Time, rest []byte, ok bool, err error) {
	if len(b) == 0 {
		return 0, b, false, msgpack.ErrShort
	}
	c := b[0]
	// The encoding that matters for speed: EventTime as fixext8.
	if c == 0xd7 && len(b) >= 10 && b[1] == EventTimeExt {
		t, ok = fromSecNsec(int64(binary.BigEndian.Uint32(b[2:])), int64(binary.BigEndian.Uint32(b[6:])), now)
		return t, b[10:], ok, nil
	}
	switch msgpack.TypeOf(c) {
	case msgpack.Int:
		if msgpack.IsUint64(b) {
			u, rest, err := msgpack.ReadUint64(b)
			if err != nil {
				return 0, b, false, err
			}
			if u > maxSec {
				return 0, rest, false, nil
			}
			t, ok = fromSecNsec(int64(u), 0, now)
			return t, rest, ok, nil
		}
		v, rest, err := msgpack.ReadInt(b)
		if err != nil {
			return 0, b, false, err
		}
		t, ok = fromSecNsec(v, 0, now)
		return t, rest, ok, nil
	case msgpack.Float:
		f, rest, err := msgpack.ReadFloat(b)
		if err != nil {
			return 0, b, false, err
		}
		t, ok = fromFloat(f, now)
		return t, rest, ok, nil
	case msgpack.Ext:
		typ, data, rest, err := msgpack.ReadExt(b)
		if err != nil {
			return 0, b, false, err
		}
		t, ok = fromExt(typ, data, now)
		return t, rest, ok, nil
	case msgpack.Nil:
		return now, b[1:], true, nil
	case msgpack.Array:
		raw, rest, err := msgpack.ReadRaw(b, depth)
		if err != nil {
			return 0, b, false, err
		}
		n, p, _ := msgpack.ReadArrayHeader(raw)
		if n != 2 || msgpack.Peek(p) == msgpack.Array {
			return 0, rest, false, nil
		}
		t, p, ok, err = readTime(p, now, depth-1)
		if err != nil || !ok {
			return 0, rest, false, err
		}
		if mt := msgpack.Peek(p); mt != msgpack.Map && mt != msgpack.Nil {
			return 0, rest, false, nil
		}
		return t, rest, true, nil
	}
	_, rest, err = msgpack.ReadRaw(b, depth)
	if err != nil {
		return 0, b, false, err
	}
	return 0, rest, false, nil
}

func fromSecNsec(sec, nsec int64, now event.Time) (event.Time, bool) {
	if nsec < 0 || nsec >= 1e9 || sec > maxSec || sec < minSec {
		return 0, false
	}
	if sec == 0 {
		return now, true
	}
	return event.FromUnix(sec, nsec), true
}

func fromFloat(f float64, now event.Time) (event.Time, bool) {
	if math.IsNaN(f) || f > maxSec || f < minSec {
		return 0, false
	}
	sec := math.Floor(f)
	nsec := math.Round((f - sec) * 1e9)
	if nsec >= 1e9 {
		sec++
		nsec -= 1e9
	}
	if math.Trunc(f) == 0 {
		return now, true
	}
	return event.FromUnix(int64(sec), int64(nsec)), true
}

func fromExt(typ int8, data []byte, now event.Time) (event.Time, bool) {
	switch {
	case typ == EventTimeExt && len(data) == 8:
		return fromSecNsec(int64(binary.BigEndian.Uint32(data)), int64(binary.BigEndian.Uint32(data[4:])), now)
	case typ == TimestampExt && len(data) == 4:
		return fromSecNsec(int64(binary.BigEndian.Uint32(data)), 0, now)
	case typ == TimestampExt && len(data) == 8:
		v := binary.BigEndian.Uint64(data)
		return fromSecNsec(int64(v&(1<<34-1)), int64(v>>34), now)
	case typ == TimestampExt && len(data) == 12:
		return fromSecNsec(int64(binary.BigEndian.Uint64(data[4:])), int64(binary.BigEndian.Uint32(data)), now)
	}
	return 0, false
}
