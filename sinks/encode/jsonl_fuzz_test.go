package encode

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/marutalog/maruta/internal/msgpack"
)

// FuzzJSONLLine feeds arbitrary bytes as a record to the JSON-lines
// encoder: it never panics, a refused record leaves the buffer as it was,
// and an accepted one is one valid JSON object line.
func FuzzJSONLLine(f *testing.F) {
	rec := msgpack.AppendMapHeader(nil, 3)
	rec = msgpack.AppendString(rec, "log")
	rec = msgpack.AppendString(rec, `{"a":"b\n"}`)
	rec = msgpack.AppendString(rec, "n")
	rec = msgpack.AppendInt(rec, -5)
	rec = msgpack.AppendString(rec, "m")
	rec = msgpack.AppendMapHeader(rec, 1)
	rec = msgpack.AppendString(rec, "k")
	rec = append(rec, 0xc3)
	f.Add(rec)
	f.Add(rec[:len(rec)-3])
	f.Add([]byte{0x81, 0x01, 0x02})
	f.Add([]byte{0x81, 0xc4, 0x01, 0xff, 0xc0})
	enc := NewJSONL("time", "tag", "", false)
	f.Fuzz(func(t *testing.T, rec []byte) {
		prefix := []byte("previous line\n")
		out, _, ok := enc.appendLine(bytes.Clone(prefix), "t", 0, rec, nil)
		if !ok {
			if !bytes.Equal(out, prefix) {
				t.Fatalf("refused record changed the buffer: %q", out)
			}
			return
		}
		line := out[len(prefix):]
		if len(line) == 0 || line[len(line)-1] != '\n' || !json.Valid(line[:len(line)-1]) {
			t.Fatalf("record %x made an invalid line %q", rec, line)
		}
	})
}
