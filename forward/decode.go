package forward

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// Mode is the shape of a Forward request.
type Mode uint8

// Forward protocol v1 modes. ModeHeartbeat is a msgpack nil sent between
// requests.
const (
	ModeHeartbeat Mode = iota
	ModeMessage
	ModeForward
	ModePackedForward
	ModeCompressedPackedForward
	numModes
)

var modeNames = [numModes]string{"heartbeat", "message", "forward", "packed_forward", "compressed_packed_forward"}

func (m Mode) String() string {
	if m < numModes {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// invalidReason says why an event of a well-formed request was skipped.
type invalidReason uint8

const (
	invalidTime   invalidReason = iota // time of an unknown type or out of range
	invalidRecord                      // record is not a map
	invalidEntry                       // entry is not a [time, record] array
	numInvalid
)

var invalidNames = [numInvalid]string{"bad_time", "record_not_map", "bad_entry"}

// Reasons a request or a connection is refused, the label values of
// maruta_forward_errors_total.
const (
	reasonInvalidMsgpack   = "invalid_msgpack"        // stream is not msgpack: connection closed
	reasonTooLarge         = "too_large"              // over chunk_size_limit: connection closed
	reasonTooDeep          = "too_deep"               // over max_depth: connection closed
	reasonDecompressedSize = "decompressed_too_large" // over max_decompressed_size: connection closed
	reasonDecompressBudget = "decompress_budget"      // inflating needs memory other requests hold: connection closed
	reasonBadRequest       = "bad_request"            // well-framed, not a Forward request: rejected
	reasonBadCompression   = "bad_compression"        // gzip/zstd payload is corrupt: rejected
	reasonBadEntries       = "bad_entries"            // packed entries cut short or not msgpack: rejected
	reasonConsumeFailed    = "consume_failed"         // downstream refused the events: not acked
	reasonIdleTimeout      = "idle_timeout"           // nothing received for idle_timeout: closed
	reasonMaxConnections   = "max_connections"        // accept waited for a free connection slot
	reasonAuthFailed       = "auth_failed"            // handshake refused: closed
	reasonTLSHandshake     = "tls_handshake"          // TLS handshake failed: closed
	reasonReadError        = "read_error"             // connection broke mid-request
	reasonWriteError       = "write_error"            // writing an ack or handshake failed: closed
)

// requestError is a request that is refused whole. fatal means the
// connection cannot go on (a limit was hit, or the stream lost its framing).
type requestError struct {
	reason string
	fatal  bool
	err    error
}

func (e *requestError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func reject(reason string, format string, args ...any) *requestError {
	return &requestError{reason: reason, err: fmt.Errorf(format, args...)}
}

func fatal(reason string, err error) *requestError {
	return &requestError{reason: reason, fatal: true, err: err}
}

// request is one decoded Forward request. Its slices point into the bytes
// given to decode and into the decoder's buffers: valid until the next call.
type request struct {
	mode    Mode
	tag     []byte
	chunk   []byte // raw msgpack value of the chunk option; nil: no ack wanted
	events  []event.Event
	invalid [numInvalid]int
}

func (r *request) invalidCount() int {
	n := 0
	for _, c := range r.invalid {
		n += c
	}
	return n
}

// decoder turns framed requests into events. It owns the buffers that are
// reused from request to request (events, inflated blocks); one per
// connection, not safe for concurrent use. The records of a decoded
// request point into them until the next decode or release.
type decoder struct {
	maxDepth        int
	maxDecompressed int
	budget          *inflateBudget // shared by the server's connections

	events []event.Event
	br     bytes.Reader
	gz     *gzip.Reader
	zd     *zstd.Decoder
	zdUsed bool // zd inflated something since the last release

	// Inflated payload (inflate.go): the first block, kept, and the
	// budget's blocks after it; what the request holds of the budget.
	first    []byte
	blocks   [][]byte
	filled   [][]byte // the request's blocks in order, with their lengths
	arena    []byte   // entries that span blocks, copied whole
	fr       framer   // finds where such an entry ends
	held     int64
	histHeld int64         // of held, for zstd's history
	waited   time.Duration // for the budget, by this request
	inflated int           // bytes the last compressed request inflated to
	one      [1][]byte
}

func newDecoder(maxDepth, maxDecompressed int) *decoder {
	return &decoder{maxDepth: maxDepth, maxDecompressed: maxDecompressed, budget: unlimited()}
}

// close releases the decompressors and the buffers.
func (d *decoder) close() {
	d.dropBlocks()
	if d.zd != nil {
		d.zd.Close()
		d.zd = nil
	}
	putBuf(d.first)
	d.first = nil
}

// release gives back what the last request held and drops buffers that a
// large request made large, so an idle connection pins little: an idle
// connection keeps no inflated block, and a zstd decoder that inflated
// more than one block is closed (its history is up to zstdMaxWindow).
func (d *decoder) release() {
	d.dropBlocks()
	if cap(d.events) > maxKeptEvents {
		d.events = nil
	}
	if cap(d.arena) > maxKeptBuffer {
		d.arena = nil
	}
	clear(d.filled)
	d.filled = d.filled[:0]
	if d.first != nil {
		putBuf(d.first)
		d.first = nil
	}
	if d.zd != nil && d.zdUsed && d.inflated > firstBlock {
		d.zd.Close()
		d.zd = nil
	}
	d.zdUsed = false
}

const (
	maxKeptEvents = 1 << 16
	maxKeptBuffer = 1 << 20
)

// decode decodes one whole request, req, as framed by framer (so req is one
// well-formed msgpack value no deeper than maxDepth). now replaces times of
// 0. On error nothing of the request may be used.
func (d *decoder) decode(req []byte, now event.Time, r *request) *requestError {
	if d.held > 0 {
		d.dropBlocks() // the previous request's records are no longer used
	}
	*r = request{events: d.events[:0]}
	defer func() { d.events = r.events[:0] }()
	if len(req) == 1 && req[0] == 0xc0 {
		r.mode = ModeHeartbeat
		return nil
	}
	n, b, err := msgpack.ReadArrayHeader(req)
	if err != nil {
		return reject(reasonBadRequest, "request is a %s, not an array", msgpack.Peek(req))
	}
	if n < 2 || n > 4 {
		return reject(reasonBadRequest, "request array has %d elements", n)
	}
	if msgpack.Peek(b) != msgpack.Str {
		return reject(reasonBadRequest, "tag is a %s, not a str", msgpack.Peek(b))
	}
	r.tag, b, _ = msgpack.ReadStr(b)
	depth := d.maxDepth - 1 // inside the request array
	switch msgpack.Peek(b) {
	case msgpack.Array:
		if n > 3 {
			return reject(reasonBadRequest, "forward request has %d elements", n)
		}
		r.mode = ModeForward
		cnt, p, _ := msgpack.ReadArrayHeader(b)
		for i := 0; i < cnt; i++ {
			if p, err = d.entry(p, now, depth-1, r); err != nil {
				return reject(reasonBadRequest, "read entry %d: %w", i, err)
			}
		}
		if n == 3 {
			if _, rerr := parseOption(p, depth, r); rerr != nil {
				return rerr
			}
		}
		return nil
	case msgpack.Str, msgpack.Bin:
		if n > 3 {
			return reject(reasonBadRequest, "packed forward request has %d elements", n)
		}
		payload, _, p, _ := msgpack.ReadBytes(b)
		compressed := ""
		if n == 3 {
			var rerr *requestError
			if compressed, rerr = parseOption(p, depth, r); rerr != nil {
				return rerr
			}
		}
		return d.packed(payload, compressed, now, depth, r)
	}
	if n < 3 {
		return reject(reasonBadRequest, "message request has %d elements", n)
	}
	r.mode = ModeMessage
	t, b, ok, err := readTime(b, now, depth)
	if err != nil {
		return reject(reasonBadRequest, "read time: %w", err)
	}
	rec, b, err := msgpack.ReadRaw(b, depth)
	if err != nil {
		return reject(reasonBadRequest, "read record: %w", err)
	}
	if n == 4 {
		if _, rerr := parseOption(b, depth, r); rerr != nil {
			return rerr
		}
	}
	switch {
	case !ok:
		r.invalid[invalidTime]++
	case msgpack.Peek(rec) != msgpack.Map:
		r.invalid[invalidRecord]++
	default:
		r.events = append(r.events, event.Event{Time: t, Record: rec})
	}
	return nil
}

// entry decodes one [time, record] entry at the start of b, appends it to
// r.events when it is valid or counts it when it is not, and returns the
// bytes after it. An error means b is not well-formed msgpack there.
func (d *decoder) entry(b []byte, now event.Time, depth int, r *request) ([]byte, error) {
	if depth <= 0 {
		return b, msgpack.ErrDepth
	}
	var p []byte
	if len(b) > 0 && b[0] == 0x92 { // fixarray of 2: nearly every entry
		p = b[1:]
	} else if n, q, err := msgpack.ReadArrayHeader(b); err == nil && n == 2 {
		p = q
	} else {
		_, rest, err := msgpack.ReadRaw(b, depth)
		if err != nil {
			return b, err
		}
		r.invalid[invalidEntry]++
		return rest, nil
	}
	t, p, ok, err := readTime(p, now, depth-1)
	if err != nil {
		return b, err
	}
	rec, rest, err := msgpack.ReadRaw(p, depth-1)
	if err != nil {
		return b, err
	}
	switch {
	case !ok:
		r.invalid[invalidTime]++
	case msgpack.Peek(rec) != msgpack.Map:
		r.invalid[invalidRecord]++
	default:
		r.events = append(r.events, event.Event{Time: t, Record: rec})
	}
	return rest, nil
}

// parseOption reads the option element at b: nil or a map. It sets r.chunk
// and returns the compressed option. Other keys (size, fluent_signal, …)
// are ignored: size is only a hint.
func parseOption(b []byte, depth int, r *request) (compressed string, rerr *requestError) {
	switch msgpack.Peek(b) {
	case msgpack.Nil:
		return "", nil
	case msgpack.Map:
	default:
		return "", reject(reasonBadRequest, "option is a %s, not a map", msgpack.Peek(b))
	}
	n, p, _ := msgpack.ReadMapHeader(b)
	for i := 0; i < n; i++ {
		var key []byte
		if t := msgpack.Peek(p); t == msgpack.Str || t == msgpack.Bin {
			key, _, p, _ = msgpack.ReadBytes(p)
		} else {
			_, p, _ = msgpack.ReadRaw(p, depth-1)
		}
		val, rest, err := msgpack.ReadRaw(p, depth-1)
		if err != nil {
			return "", reject(reasonBadRequest, "read option: %w", err)
		}
		p = rest
		switch string(key) {
		case "chunk":
			// fluentd acks only a truthy chunk: nil and false ask for nothing.
			if val[0] != 0xc0 && val[0] != 0xc2 {
				r.chunk = val
			} else {
				r.chunk = nil
			}
		case "compressed":
			v, _, _, err := msgpack.ReadBytes(val)
			if err != nil {
				return "", reject(reasonBadRequest, "option compressed is a %s, not a str", msgpack.Peek(val))
			}
			switch string(v) {
			case "gzip", "zstd", "text":
				compressed = string(v)
			default:
				return "", reject(reasonBadRequest, "unknown compression %q", v)
			}
		}
	}
	return compressed, nil
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// packed decodes a PackedForward payload: a stream of msgpack entries,
// possibly compressed. A payload that cannot be decoded whole is refused
// whole.
func (d *decoder) packed(payload []byte, compressed string, now event.Time, depth int, r *request) *requestError {
	r.mode = ModePackedForward
	if len(payload) == 0 {
		return nil
	}
	if compressed == "" {
		// An uncompressed stream starts with an array head, never with these.
		switch {
		case bytes.HasPrefix(payload, gzipMagic):
			compressed = "gzip"
		case bytes.HasPrefix(payload, zstdMagic):
			compressed = "zstd"
		}
	}
	if compressed == "gzip" || compressed == "zstd" {
		r.mode = ModeCompressedPackedForward
		return d.inflate(payload, compressed, now, depth, r)
	}
	// Entries sit where a Forward request's entries would: inside the
	// request array and the entries array.
	d.one[0] = payload
	defer func() { d.one[0] = nil }()
	return d.entries(d.one[:], now, depth, r, false)
}

var errDecompressedTooLarge = errors.New("payload larger than max_decompressed_size")
