package sinks

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// jsonlEncoder writes one JSON object per line, like fluentd's out_file and
// out_s3 with format json: the record's keys in order, then the event time
// under timeKey (formatted with timeFormat; it replaces a record key of the
// same name, as fluentd's include_time_key does) and, for stdout, the tag
// under tagKey. Optionally gzip (.jsonl.gz). Safe for concurrent use.
type jsonlEncoder struct {
	timeKey string
	tagKey  string
	format  timeFormat
	gzip    bool
}

// DefaultJSONTimeFormat renders the time key as RFC 3339 with milliseconds.
const DefaultJSONTimeFormat = "%Y-%m-%dT%H:%M:%S.%LZ"

func newJSONLEncoder(enc *config.Encoding) *jsonlEncoder {
	f := enc.TimeFormat
	if f == "" {
		f = DefaultJSONTimeFormat
	}
	return &jsonlEncoder{timeKey: enc.TimeKey, format: compileTimeFormat(f), gzip: enc.Compression == "gzip"}
}

func (e *jsonlEncoder) ext() string {
	if e.gzip {
		return "jsonl.gz"
	}
	return "jsonl"
}

func (e *jsonlEncoder) contentType() string {
	if e.gzip {
		return "application/gzip"
	}
	return "application/x-ndjson"
}

func (e *jsonlEncoder) encode(ctx context.Context, c Chunk, w io.Writer) (encodeStats, error) {
	var st encodeStats
	bw := bufio.NewWriterSize(w, 256<<10)
	var out io.Writer = bw
	var gz *gzip.Writer
	if e.gzip {
		gz = gzip.NewWriter(bw)
		out = gz
	}
	var line []byte
	n := 0
	err := c.Scan(func(tag string, t event.Time, rec []byte) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		st.inputBytes += int64(len(rec))
		var ok bool
		var inv int
		line, inv, ok = e.appendLine(line[:0], tag, t, rec)
		st.invalidUTF8 += int64(inv)
		if !ok {
			st.invalid++
			return nil
		}
		st.rows++
		_, err := out.Write(line)
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

// appendLine appends one JSON line for an event. ok is false when rec is
// not a well-formed msgpack map (dst is then unchanged).
func (e *jsonlEncoder) appendLine(dst []byte, tag string, t event.Time, rec []byte) (out []byte, invalid int, ok bool) {
	n, b, err := msgpack.ReadMapHeader(rec)
	if err != nil {
		return dst, 0, false
	}
	if _, err := msgpack.Skip(rec, maxDepth); err != nil {
		return dst, 0, false
	}
	dst = append(dst, '{')
	first := true
	for i := 0; i < n; i++ {
		k, rest, _ := msgpack.ReadRaw(b, maxDepth)
		v, rest, _ := msgpack.ReadRaw(rest, maxDepth)
		b = rest
		if e.skipKey(k) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		mark := len(dst)
		var inv int
		if tk := msgpack.Peek(k); tk == msgpack.Str || tk == msgpack.Bin {
			dst, _, inv, _ = msgpack.AppendJSON(dst, k, maxDepth)
		} else { // a non-string key: its JSON text, quoted
			dst, _, inv, _ = msgpack.AppendJSON(dst, k, maxDepth)
			txt := append([]byte(nil), dst[mark:]...)
			dst, _ = msgpack.AppendJSONString(dst[:mark], txt)
		}
		invalid += inv
		dst = append(dst, ':')
		dst, _, inv, _ = msgpack.AppendJSON(dst, v, maxDepth)
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
		dst, _ = msgpack.AppendJSONString(dst, e.format.append(ts[:0], t.Std()))
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

// skipKey reports whether a record key is replaced by the time or tag key.
func (e *jsonlEncoder) skipKey(k []byte) bool {
	if e.timeKey == "" && e.tagKey == "" {
		return false
	}
	if t := msgpack.Peek(k); t != msgpack.Str && t != msgpack.Bin {
		return false
	}
	s, _, _, _ := msgpack.ReadBytes(k)
	return e.timeKey != "" && string(s) == e.timeKey || e.tagKey != "" && string(s) == e.tagKey
}
