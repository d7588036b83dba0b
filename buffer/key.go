package buffer

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// sliceOf returns the start of t's time slice in Unix seconds (floor, UTC),
// or 0 when timekey is 0.
func sliceOf(t event.Time, timekeyNs int64) int64 {
	if timekeyNs <= 0 {
		return 0
	}
	v := int64(t)
	q := v / timekeyNs
	if v%timekeyNs < 0 {
		q--
	}
	return q * timekeyNs / 1e9
}

// keyValue returns the string form of record[key] for a chunk key, the way
// fluentd's placeholders render it (Ruby to_s): a string as is, integers in
// decimal, floats like Ruby ("1.0", "1.0e+20"), true/false, nil or a missing
// key as "". Maps and arrays render as JSON (fluentd would print Ruby's
// inspect form).
func keyValue(record []byte, key string) string {
	v, found, err := msgpack.MapGet(record, key, recordMaxDepth)
	if err != nil || !found {
		return ""
	}
	var sb strings.Builder
	stringify(&sb, v, false)
	return sb.String()
}

func stringify(sb *strings.Builder, v []byte, quoted bool) []byte {
	switch msgpack.Peek(v) {
	case msgpack.Nil:
		if quoted {
			sb.WriteString("null")
		}
		return v[1:]
	case msgpack.Bool:
		b, rest, _ := msgpack.ReadBool(v)
		sb.WriteString(strconv.FormatBool(b))
		return rest
	case msgpack.Int:
		if msgpack.IsUint64(v) {
			u, rest, _ := msgpack.ReadUint64(v)
			sb.WriteString(strconv.FormatUint(u, 10))
			return rest
		}
		i, rest, _ := msgpack.ReadInt(v)
		sb.WriteString(strconv.FormatInt(i, 10))
		return rest
	case msgpack.Float:
		f, rest, _ := msgpack.ReadFloat(v)
		sb.WriteString(rubyFloat(f))
		return rest
	case msgpack.Str, msgpack.Bin:
		s, _, rest, _ := msgpack.ReadBytes(v)
		if quoted {
			sb.WriteString(strconv.Quote(string(s)))
		} else {
			sb.Write(s)
		}
		return rest
	case msgpack.Ext:
		typ, data, rest, _ := msgpack.ReadExt(v)
		if typ == 0 && len(data) == 8 {
			sb.WriteString(strconv.FormatUint(uint64(binary.BigEndian.Uint32(data)), 10))
		} else {
			sb.WriteString(hex.EncodeToString(data))
		}
		return rest
	case msgpack.Array:
		n, rest, _ := msgpack.ReadArrayHeader(v)
		sb.WriteByte('[')
		for i := 0; i < n && len(rest) > 0; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			rest = stringify(sb, rest, true)
		}
		sb.WriteByte(']')
		return rest
	case msgpack.Map:
		n, rest, _ := msgpack.ReadMapHeader(v)
		sb.WriteByte('{')
		for i := 0; i < n && len(rest) > 0; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			var k strings.Builder
			rest = stringify(&k, rest, false)
			sb.WriteString(strconv.Quote(k.String()))
			sb.WriteByte(':')
			if len(rest) > 0 {
				rest = stringify(sb, rest, true)
			}
		}
		sb.WriteByte('}')
		return rest
	}
	return nil
}

// rubyFloat formats f like Ruby's Float#to_s.
func rubyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if a := math.Abs(f); a == 0 || a >= 1e-4 && a < 1e16 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.ContainsAny(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	if i := strings.IndexByte(s, 'e'); i >= 0 && !strings.Contains(s[:i], ".") {
		s = s[:i] + ".0" + s[i:]
	}
	return s
}

// sanitizeSegment makes a record value safe as a path or object key part:
// anything outside [A-Za-z0-9_.=-] becomes '_', and "", "." and ".." become
// "_", so a value can never climb out of the output's folder.
func sanitizeSegment(s string) string {
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var sb strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && safeByte(byte(r)) {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func safeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '='
}

// resolveKeys replaces ${key} for every chunk key in path with its sanitized
// value.
func resolveKeys(path string, names, values []string) string {
	if !strings.Contains(path, "${") {
		return path
	}
	for i, k := range names {
		path = strings.ReplaceAll(path, "${"+k+"}", sanitizeSegment(values[i]))
	}
	return path
}
