package forward

import (
	"bytes"
	"fmt"
	"math"

	"github.com/klauspost/compress/gzip"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// Packer collects the entries of one PackedForward request: events of one
// tag as [time, record] pairs, the time as EventTime. Records are copied
// into one growing buffer, so after warm-up Add allocates nothing. A Packer
// is not safe for concurrent use; Reset makes it reusable.
type Packer struct {
	tag     string
	entries []byte
	n       int
}

// Reset empties the packer and sets the tag of the next request.
func (p *Packer) Reset(tag string) {
	p.tag = tag
	p.entries = p.entries[:0]
	p.n = 0
}

// Add appends one event. record must be one msgpack map (it is copied as
// is).
func (p *Packer) Add(t event.Time, record []byte) {
	p.entries = appendPackedEntry(p.entries, t, record)
	p.n++
}

// Tag returns the tag set by Reset.
func (p *Packer) Tag() string { return p.tag }

// Events returns the number of events added since Reset.
func (p *Packer) Events() int { return p.n }

// Size returns the bytes of the entries added since Reset (uncompressed).
func (p *Packer) Size() int { return len(p.entries) }

// Entries returns the entries added since Reset, valid until the next Add
// or Reset.
func (p *Packer) Entries() []byte { return p.entries }

// EntrySize returns how many bytes Packer.Add adds for an event.
func EntrySize(t event.Time, record []byte) int {
	sec, _ := t.Unix()
	if sec >= 0 && sec <= math.MaxUint32 {
		return 1 + 10 + len(record)
	}
	return 1 + len(msgpack.AppendInt(make([]byte, 0, 9), sec)) + len(record)
}

// RequestOverhead bounds what a PackedForward request adds to its entries
// besides the tag: array and bin headers and an option map with size,
// a chunk id of up to 64 bytes and compressed.
const RequestOverhead = 128

// appendPackedEntry appends [time, record]: EventTime when the seconds fit
// in a uint32 (the Forward protocol's form), integer seconds otherwise.
func appendPackedEntry(dst []byte, t event.Time, record []byte) []byte {
	sec, nsec := t.Unix()
	dst = append(dst, 0x92) // fixarray(2)
	if sec >= 0 && sec <= math.MaxUint32 {
		dst = msgpack.AppendEventTime(dst, sec, nsec)
	} else {
		dst = msgpack.AppendInt(dst, sec)
	}
	return append(dst, record...)
}

// RequestEncoder turns a Packer's entries into a PackedForward request,
// compressed (CompressedPackedForward, one gzip member) when it was made
// with "gzip". It keeps its output and compression buffers between calls,
// so encoding allocates nothing after warm-up. Not safe for concurrent use.
type RequestEncoder struct {
	compress string
	gz       *gzip.Writer
	zbuf     bytes.Buffer
	out      []byte
}

// NewRequestEncoder returns an encoder for compress "" or "text" (entries
// as they are) or "gzip".
func NewRequestEncoder(compress config.ForwardCompress) (*RequestEncoder, error) {
	e := &RequestEncoder{}
	switch compress {
	case "", config.CompressText:
	case config.CompressGzip:
		e.compress = "gzip"
	default:
		return nil, fmt.Errorf("new request encoder: unknown compression %q (text or gzip)", compress)
	}
	return e, nil
}

// Encode returns the request for p's events with the options size and,
// when chunk is not empty, chunk (the server then acks it). The result is
// valid until the next Encode.
func (e *RequestEncoder) Encode(p *Packer, chunk string) ([]byte, error) {
	entries := p.entries
	o := Options{Size: p.n, Chunk: chunk}
	if e.compress == "gzip" {
		e.zbuf.Reset()
		if e.gz == nil {
			e.gz = gzip.NewWriter(&e.zbuf)
		} else {
			e.gz.Reset(&e.zbuf)
		}
		if _, err := e.gz.Write(entries); err != nil {
			return nil, fmt.Errorf("compress entries: %w", err)
		}
		if err := e.gz.Close(); err != nil {
			return nil, fmt.Errorf("compress entries: %w", err)
		}
		entries = e.zbuf.Bytes()
		o.Compressed = "gzip"
	}
	e.out = AppendPackedForward(e.out[:0], p.tag, entries, o)
	return e.out, nil
}
