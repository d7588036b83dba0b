package buffer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"time"

	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// The on-disk format, specified in FORMAT.md.
const (
	magic          = "MRTB"
	formatVersion  = 2  // written; version 1 (no dedup marks) is still read
	preambleSize   = 13 // magic, version, header length, header CRC
	maxHeaderSize  = 64 << 10
	frameHeadSize  = 8 // payload length, payload CRC
	maxFrameLen    = 1 << 30
	frameCap       = 1 << 20 // split appends into frames of at most this payload size
	recordMaxDepth = 100
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// errCorrupt marks a chunk whose bytes do not follow FORMAT.md.
var errCorrupt = errors.New("corrupt chunk")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
}

// header is a chunk's header map.
type header struct {
	Version byte // of the file (the preamble's byte)
	ID      string
	Output  string
	Node    string
	Path    string
	Tag     string
	Timekey time.Duration // whole seconds; 0 = no slicing
	Slice   int64         // Unix seconds of the slice start
	Keys    map[string]string
	Created time.Time
}

// appendHeader appends the preamble and header of h to dst.
func appendHeader(dst []byte, h *header) []byte {
	body := make([]byte, 0, 128+len(h.Path)+len(h.Tag))
	n := 8
	if len(h.Keys) > 0 {
		n++
	}
	body = msgpack.AppendMapHeader(body, n)
	body = msgpack.AppendString(body, "id")
	body = msgpack.AppendString(body, h.ID)
	body = msgpack.AppendString(body, "output")
	body = msgpack.AppendString(body, h.Output)
	body = msgpack.AppendString(body, "node")
	body = msgpack.AppendString(body, h.Node)
	body = msgpack.AppendString(body, "path")
	body = msgpack.AppendString(body, h.Path)
	body = msgpack.AppendString(body, "tag")
	body = msgpack.AppendString(body, h.Tag)
	body = msgpack.AppendString(body, "timekey")
	body = msgpack.AppendInt(body, int64(h.Timekey/time.Second))
	body = msgpack.AppendString(body, "slice")
	body = msgpack.AppendInt(body, h.Slice)
	if len(h.Keys) > 0 {
		body = msgpack.AppendString(body, "keys")
		body = msgpack.AppendMapHeader(body, len(h.Keys))
		names := make([]string, 0, len(h.Keys))
		for k := range h.Keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			body = msgpack.AppendString(body, k)
			body = msgpack.AppendString(body, h.Keys[k])
		}
	}
	body = msgpack.AppendString(body, "created")
	body = msgpack.AppendInt(body, h.Created.UnixNano())

	dst = append(dst, magic...)
	dst = append(dst, formatVersion)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = binary.BigEndian.AppendUint32(dst, crc(body))
	return append(dst, body...)
}

// readHeader reads the preamble and header from r. It returns the header and
// the number of bytes it used. Any problem is an errCorrupt (or an I/O error
// other than EOF).
func readHeader(r io.Reader) (*header, int64, error) {
	var pre [preambleSize]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, corruptf("truncated header")
		}
		return nil, 0, err
	}
	if string(pre[:4]) != magic {
		return nil, 0, corruptf("bad magic %q", pre[:4])
	}
	if pre[4] != 1 && pre[4] != formatVersion {
		return nil, 0, corruptf("unknown format version %d", pre[4])
	}
	n := binary.BigEndian.Uint32(pre[5:9])
	if n < 1 || n > maxHeaderSize {
		return nil, 0, corruptf("header length %d out of range", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, corruptf("truncated header")
		}
		return nil, 0, err
	}
	if crc(body) != binary.BigEndian.Uint32(pre[9:13]) {
		return nil, 0, corruptf("header checksum mismatch")
	}
	h, err := decodeHeader(body)
	if err != nil {
		return nil, 0, err
	}
	h.Version = pre[4]
	return h, preambleSize + int64(n), nil
}

func decodeHeader(body []byte) (*header, error) {
	h := &header{}
	var created int64
	var haveCreated bool
	str := func(v []byte) (string, error) {
		s, _, _, err := msgpack.ReadBytes(v)
		return string(s), err
	}
	err := msgpack.MapEach(body, 4, func(k, v []byte) error {
		key, _, _, err := msgpack.ReadBytes(k)
		if err != nil {
			return nil // not a str key: ignore, like unknown keys
		}
		switch string(key) {
		case "id":
			h.ID, err = str(v)
		case "output":
			h.Output, err = str(v)
		case "node":
			h.Node, err = str(v)
		case "path":
			h.Path, err = str(v)
		case "tag":
			h.Tag, err = str(v)
		case "timekey":
			var s int64
			s, _, err = msgpack.ReadInt(v)
			h.Timekey = time.Duration(s) * time.Second
		case "slice":
			h.Slice, _, err = msgpack.ReadInt(v)
		case "created":
			created, _, err = msgpack.ReadInt(v)
			haveCreated = err == nil
		case "keys":
			h.Keys = map[string]string{}
			err = msgpack.MapEach(v, 2, func(k, v []byte) error {
				ks, err := str(k)
				if err != nil {
					return err
				}
				vs, err := str(v)
				if err != nil {
					return err
				}
				h.Keys[ks] = vs
				return nil
			})
		}
		return err
	})
	if err != nil {
		return nil, corruptf("header: %v", err)
	}
	if h.ID == "" || h.Output == "" || !haveCreated {
		return nil, corruptf("header lacks id, output or created")
	}
	if !validID(h.ID) {
		return nil, corruptf("header has an invalid chunk id %q", h.ID)
	}
	h.Created = time.Unix(0, created).UTC()
	return h, nil
}

// appendTime appends an event time as FORMAT.md says: EventTime when the
// seconds fit in uint32, else an int of seconds.
func appendTime(dst []byte, t event.Time) []byte {
	sec, nsec := t.Unix()
	if sec >= 0 && sec <= 0xffffffff {
		return msgpack.AppendEventTime(dst, sec, nsec)
	}
	return msgpack.AppendInt(dst, sec)
}

// timeSize is the encoded size of t.
func timeSize(t event.Time) int {
	sec, _ := t.Unix()
	if sec >= 0 && sec <= 0xffffffff {
		return 10
	}
	return len(msgpack.AppendInt(make([]byte, 0, 9), sec))
}

// entrySize is the encoded size of one [time, record] entry.
func entrySize(e *event.Event) int { return 1 + timeSize(e.Time) + len(e.Record) }

// payloadHeadSize is the size of the payload's head before its entries.
func payloadHeadSize(tag string, n int) int {
	size := 1 + len(tag)
	switch l := len(tag); {
	case l <= 31:
		size++
	case l <= 0xff:
		size += 2
	case l <= 0xffff:
		size += 3
	default:
		size += 5
	}
	switch {
	case n <= 15:
		size++
	case n <= 0xffff:
		size += 3
	default:
		size += 5
	}
	return size
}

// appendFrame appends one frame holding events evs with tag to dst, and
// the dedup mark m first in its payload when m is not nil; it returns the
// mark's length too.
func appendFrame(dst []byte, tag string, evs []event.Event, idx []int32, m *dedup.Mark) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	markLen := 0
	if m != nil {
		dst = dedup.AppendMark(dst, m)
		markLen = len(dst) - start - frameHeadSize
	}
	dst = append(dst, 0x92)
	dst = msgpack.AppendString(dst, tag)
	dst = msgpack.AppendArrayHeader(dst, len(idx))
	for _, i := range idx {
		e := &evs[i]
		dst = append(dst, 0x92)
		dst = appendTime(dst, e.Time)
		dst = append(dst, e.Record...)
	}
	payload := dst[start+frameHeadSize:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc(payload))
	return dst, markLen
}

// readTime reads an event time: EventTime (ext 0, 8 bytes), an int of
// seconds, or a float of seconds (accepted for robustness).
func readTime(b []byte) (event.Time, []byte, error) {
	switch msgpack.Peek(b) {
	case msgpack.Ext:
		typ, data, rest, err := msgpack.ReadExt(b)
		if err != nil {
			return 0, b, err
		}
		if typ != 0 || len(data) != 8 {
			return 0, b, fmt.Errorf("time is ext type %d of %d bytes, not EventTime", typ, len(data))
		}
		sec := int64(binary.BigEndian.Uint32(data))
		nsec := int64(binary.BigEndian.Uint32(data[4:]))
		return event.FromUnix(sec, nsec), rest, nil
	case msgpack.Int:
		s, rest, err := msgpack.ReadInt(b)
		return event.FromUnix(s, 0), rest, err
	case msgpack.Float:
		f, rest, err := msgpack.ReadFloat(b)
		return event.Time(f * 1e9), rest, err
	}
	return 0, b, fmt.Errorf("time is %s", msgpack.Peek(b))
}

// splitMark returns the dedup mark that starts the payload p of a file of
// the given version (nil when there is none) and the Forward message after
// it.
func splitMark(p []byte, version byte) (mark, msg []byte, err error) {
	if version < 2 || !dedup.IsMark(p) {
		return nil, p, nil
	}
	mark, msg, err = msgpack.ReadRaw(p, recordMaxDepth)
	if err != nil {
		return nil, p, corruptf("dedup mark: %v", err)
	}
	return mark, msg, nil
}

// walkPayload checks a payload's structure and calls fn (if not nil) for
// every event. It returns the tag and the number of events. The payload
// is the Forward message after the mark, if any (splitMark).
func walkPayload(p []byte, fn func(tag []byte, t event.Time, record []byte) error) (tag []byte, n int, err error) {
	if len(p) == 0 || p[0] != 0x92 {
		return nil, 0, corruptf("payload is not [tag, entries]")
	}
	tag, rest, err := msgpack.ReadStr(p[1:])
	if err != nil {
		return nil, 0, corruptf("payload tag: %v", err)
	}
	n, rest, err = msgpack.ReadArrayHeader(rest)
	if err != nil || n < 1 {
		return nil, 0, corruptf("payload entries: n=%d %v", n, err)
	}
	for i := 0; i < n; i++ {
		if len(rest) == 0 || rest[0] != 0x92 {
			return nil, 0, corruptf("entry %d is not [time, record]", i)
		}
		t, r, err := readTime(rest[1:])
		if err != nil {
			return nil, 0, corruptf("entry %d time: %v", i, err)
		}
		rec, r, err := msgpack.ReadRaw(r, recordMaxDepth)
		if err != nil {
			return nil, 0, corruptf("entry %d record: %v", i, err)
		}
		if fn != nil {
			if err := fn(tag, t, rec); err != nil {
				return nil, 0, err
			}
		}
		rest = r
	}
	if len(rest) != 0 {
		return nil, 0, corruptf("%d bytes after the last entry", len(rest))
	}
	return tag, n, nil
}

// frameReader reads frames from a chunk body.
type frameReader struct {
	r       *bufio.Reader
	off     int64 // file offset of the next frame
	payload []byte
	limit   int64 // stop at this offset (-1: read to EOF)
}

// errTorn reports a frame cut short by the end of the file.
// It is also an errCorrupt.
var errTorn = fmt.Errorf("%w: torn frame", errCorrupt)

// next reads the next frame's payload. It returns io.EOF at a clean end, an
// errTorn or errCorrupt error for a bad frame, or an I/O error.
func (fr *frameReader) next() ([]byte, error) {
	if fr.limit >= 0 && fr.off >= fr.limit {
		return nil, io.EOF
	}
	var head [frameHeadSize]byte
	n, err := io.ReadFull(fr.r, head[:])
	if err != nil {
		if errors.Is(err, io.EOF) && n == 0 {
			return nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d of %d head bytes", errTorn, n, frameHeadSize)
		}
		return nil, err
	}
	l := binary.BigEndian.Uint32(head[:4])
	if l == 0 {
		return nil, corruptf("zero-length frame")
	}
	if l > maxFrameLen {
		return nil, corruptf("frame length %d above %d", l, maxFrameLen)
	}
	if cap(fr.payload) < int(l) {
		// Grow in steps so a bogus length near the end of a file costs at
		// most what the file holds: ReadFull fails before we grow further.
		fr.payload = make([]byte, 0, min(int(l), max(64<<10, 2*cap(fr.payload))))
	}
	fr.payload = fr.payload[:0]
	for len(fr.payload) < int(l) {
		want := int(l) - len(fr.payload)
		if free := cap(fr.payload) - len(fr.payload); free < want {
			if free == 0 {
				nb := make([]byte, len(fr.payload), min(int(l), 2*cap(fr.payload)))
				copy(nb, fr.payload)
				fr.payload = nb
				continue
			}
			want = free
		}
		start := len(fr.payload)
		m, err := io.ReadFull(fr.r, fr.payload[start:start+want])
		fr.payload = fr.payload[:start+m]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: %d of %d payload bytes", errTorn, len(fr.payload), l)
			}
			return nil, err
		}
	}
	if crc(fr.payload) != binary.BigEndian.Uint32(head[4:]) {
		return nil, corruptf("frame checksum mismatch")
	}
	fr.off += frameHeadSize + int64(l)
	return fr.payload, nil
}
