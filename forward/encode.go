package forward

import (
	"crypto/rand"
	"encoding/base64"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// Options are the option map of a request a client sends.
type Options struct {
	Size       int    // number of events; a hint for the receiver (0: omitted)
	Chunk      string // asks for an ack echoing it ("" : no ack)
	Compressed string // "gzip" or "zstd" when the entries are compressed
}

// AppendEntry appends one PackedForward entry, [EventTime, record].
func AppendEntry(dst []byte, t event.Time, record []byte) []byte {
	sec, nsec := t.Unix()
	dst = msgpack.AppendArrayHeader(dst, 2)
	dst = msgpack.AppendEventTime(dst, sec, nsec)
	return append(dst, record...)
}

// AppendPackedForward appends a PackedForward request: tag, the entries
// (AppendEntry output, compressed when o.Compressed says so) as bin, and
// the options.
func AppendPackedForward(dst []byte, tag string, entries []byte, o Options) []byte {
	dst = msgpack.AppendArrayHeader(dst, 3)
	dst = msgpack.AppendString(dst, tag)
	dst = msgpack.AppendBin(dst, entries)
	n := 0
	if o.Size > 0 {
		n++
	}
	if o.Chunk != "" {
		n++
	}
	if o.Compressed != "" {
		n++
	}
	dst = msgpack.AppendMapHeader(dst, n)
	if o.Size > 0 {
		dst = msgpack.AppendString(dst, "size")
		dst = msgpack.AppendInt(dst, int64(o.Size))
	}
	if o.Chunk != "" {
		dst = msgpack.AppendString(dst, "chunk")
		dst = msgpack.AppendString(dst, o.Chunk)
	}
	if o.Compressed != "" {
		dst = msgpack.AppendString(dst, "compressed")
		dst = msgpack.AppendString(dst, o.Compressed)
	}
	return dst
}

// NewChunkID returns a random chunk id: 16 bytes in standard base64, as
// fluentd's out_forward makes them (without Ruby's trailing newline).
func NewChunkID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}
