package encode

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/strftime"
)

// JSONL writes one JSON object per line, like fluentd's out_file and
// out_s3 with format json: the record's keys in order, then the event time
// under timeKey (formatted with a strftime.Format; it replaces a record key of the
// same name, as fluentd's include_time_key does) and, for stdout, the tag
// under tagKey. Optionally gzip (.jsonl.gz). Safe for concurrent use.
type JSONL struct {
	timeKey string
	tagKey  string
	format  strftime.Format
	gzip    bool
}

// DefaultJSONTimeFormat renders the time key as RFC 3339 with milliseconds.
const DefaultJSONTimeFormat = "%Y-%m-%dT%H:%M:%S.%LZ"

// NewJSONL returns a JSON-lines encoder: the event time under timeKey
// (none when empty) rendered with timeFormat (DefaultJSONTimeFormat when
// empty), the tag under tagKey (none when empty), gzip-compressed when
// gzip is set.
func NewJSONL(timeKey, tagKey, timeFormat string, gzip bool) *JSONL {
	if timeFormat == "" {
		timeFormat = DefaultJSONTimeFormat
	}
	return &JSONL{timeKey: timeKey, tagKey: tagKey, format: strftime.Compile(timeFormat), gzip: gzip}
}

// Ext implements Encoder.
func (e *JSONL) Ext() string {
	if e.gzip {
		return "jsonl.gz"
	}
	return "jsonl"
}

// ContentType implements Encoder.
func (e *JSONL) ContentType() string {
	if e.gzip {
		return "application/gzip"
	}
	return "application/x-ndjson"
}

// Encode implements Encoder (one pass always).
func (e *JSONL) Encode(ctx context.Context, c delivery.Chunk, w io.Writer, _ bool) (Stats, error) {
	var st Stats
	// The sinks hand over a large bufio.Writer already: write into it
	// rather than through a second buffer.
	bw, ok := w.(*bufio.Writer)
	if !ok || bw.Size() < 64<<10 {
		bw = bufio.NewWriterSize(w, 256<<10)
	}
	var gz *gzip.Writer
	if e.gzip {
		gz = gzip.NewWriter(bw)
	}
	var line []byte
	tc := strftime.NewCache(&e.format)
	n := 0
	err := c.Scan(func(tag string, t event.Time, rec []byte) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		st.InputBytes += int64(len(rec))
		// Build the line in the writer's free space when it fits, so that
		// Write does not copy it again.
		inPlace := gz == nil && bw.Available() >= 2*len(rec)+256
		dst := line[:0]
		if inPlace {
			dst = bw.AvailableBuffer()
		}
		out, inv, ok := e.appendLine(dst, tag, t, rec, tc)
		if !inPlace {
			line = out
		}
		st.InvalidUTF8 += int64(inv)
		if !ok {
			st.Invalid++
			return nil
		}
		st.Rows++
		if gz != nil {
			_, err := gz.Write(out)
			return err
		}
		_, err := bw.Write(out)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("encode jsonl: %w", err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return st, fmt.Errorf("encode jsonl: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("encode jsonl: %w", err)
	}
	return st, nil
}

// AppendLine appends the JSON line of one event to dst. ok is false when
// rec is not a well-formed msgpack map (dst is then unchanged); invalid
// counts invalid UTF-8 sequences replaced by U+FFFD. Safe for concurrent
// use.
func (e *JSONL) AppendLine(dst []byte, tag string, t event.Time, rec []byte) (out []byte, invalid int, ok bool) {
	return e.appendLine(dst, tag, t, rec, nil)
}

// appendLine appends one JSON line for an event. ok is false when rec is
// not a well-formed msgpack map (dst is then unchanged).
func (e *JSONL) appendLine(dst []byte, tag string, t event.Time, rec []byte, tc *strftime.Cache) (out []byte, invalid int, ok bool) {
	// One pass: every read is checked, and a record that turns out not to
	// be a valid msgpack map leaves dst as it was.
	start := len(dst)
	n, b, err := msgpack.ReadMapHeader(rec)
	if err != nil {
		return dst, 0, false
	}
	dst = append(dst, '{')
	first := true
	for i := 0; i < n; i++ {
		var inv int
		var skip bool
		kstr := false
		var ks []byte
		if tk := msgpack.Peek(b); tk == msgpack.Str || tk == msgpack.Bin {
			kstr = true
			ks, _, b, err = msgpack.ReadBytes(b)
			skip = err == nil && e.skipKeyBytes(ks)
		} else {
			ks, b, err = msgpack.ReadRaw(b, maxDepth)
		}
		if err != nil {
			return dst[:start], 0, false
		}
		if skip {
			if _, b, err = msgpack.ReadRaw(b, maxDepth); err != nil {
				return dst[:start], 0, false
			}
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if kstr {
			dst, inv = msgpack.AppendJSONString(dst, ks)
		} else { // a non-string key: its JSON text, quoted
			mark := len(dst)
			dst, _, inv, _ = msgpack.AppendJSON(dst, ks, maxDepth)
			txt := append([]byte(nil), dst[mark:]...)
			dst, _ = msgpack.AppendJSONString(dst[:mark], txt)
		}
		invalid += inv
		dst = append(dst, ':')
		if tv := msgpack.Peek(b); tv == msgpack.Str || tv == msgpack.Bin {
			var vs []byte
			if vs, _, b, err = msgpack.ReadBytes(b); err != nil {
				return dst[:start], 0, false
			}
			dst, inv = msgpack.AppendJSONString(dst, vs)
		} else if dst, b, inv, err = msgpack.AppendJSON(dst, b, maxDepth); err != nil {
			return dst[:start], 0, false
		}
		invalid += inv
	}
	if e.timeKey != "" {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst, _ = msgpack.AppendJSONString(dst, []byte(e.timeKey))
		dst = append(dst, ':')
		var ts [64]byte
		var tb []byte
		if tc != nil {
			tb = tc.Append(ts[:0], t)
		} else {
			tb = e.format.Append(ts[:0], t.Std())
		}
		dst, _ = msgpack.AppendJSONString(dst, tb)
	}
	if e.tagKey != "" {
		if !first {
			dst = append(dst, ',')
		}
		dst, _ = msgpack.AppendJSONString(dst, []byte(e.tagKey))
		dst = append(dst, ':')
		var inv int
		dst, inv = msgpack.AppendJSONString(dst, []byte(tag))
		invalid += inv
	}
	return append(dst, '}', '\n'), invalid, true
}

// skipKeyBytes reports whether a record key (the bytes of a string key) is
// replaced by the time or tag key.
func (e *JSONL) skipKeyBytes(s []byte) bool {
	return e.timeKey != "" && string(s) == e.timeKey || e.tagKey != "" && string(s) == e.tagKey
}
