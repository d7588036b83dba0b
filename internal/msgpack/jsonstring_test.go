package msgpack

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// appendJSONStringRef is the byte-at-a-time definition AppendJSONString's
// word-at-a-time scan must match.
func appendJSONStringRef(dst, s []byte) ([]byte, int) {
	invalid := 0
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			invalid++
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), invalid
}

func TestAppendJSONStringMatchesReference(t *testing.T) {
	check := func(s []byte) {
		t.Helper()
		want, wantInv := appendJSONStringRef([]byte("x"), s)
		got, gotInv := AppendJSONString([]byte("x"), s)
		if !bytes.Equal(got, want) || gotInv != wantInv {
			t.Fatalf("AppendJSONString(%q) = %q, %d; want %q, %d", s, got, gotInv, want, wantInv)
		}
	}
	// Every byte value at every position of words of 1 to 24 bytes, in a
	// run of plain characters.
	for n := 1; n <= 24; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				s := bytes.Repeat([]byte{'a'}, n)
				s[pos] = byte(c)
				check(s)
			}
		}
	}
	// Random mixes weighted toward special bytes and multi-byte UTF-8.
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "Z", " ", "\"", "\\", "\n", "\x00", "\x1f", "\x7f", "é", "日本", "\xff", "\xc3", "\xe6\x97", "{\"k\":1}"}
	for i := 0; i < 20000; i++ {
		var s []byte
		for k := r.IntN(40); k > 0; k-- {
			s = append(s, alphabet[r.IntN(len(alphabet))]...)
		}
		check(s)
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	line := []byte(`{"ts":"2026-11-22T13:05:12.345Z","level":"info","method":"GET","path":"/api/v1/items/12345","status":200,"latency_ms":12.5,"bytes":5123,"request_id":"9f3c2a1e7b6d5c4f","ua":"Mozilla/5.0 (X11; Linux x86_64)"}`)
	id := bytes.Repeat([]byte("3f2a9c1e"), 8)
	var dst []byte
	b.SetBytes(int64(len(line) + len(id)))
	for b.Loop() {
		dst, _ = AppendJSONString(dst[:0], line)
		dst, _ = AppendJSONString(dst, id)
	}
}

// FuzzAppendJSONString checks the word-at-a-time escaper against the
// byte-at-a-time definition, also with dst holding a prefix (the escaper
// works in dst's spare capacity).
func FuzzAppendJSONString(f *testing.F) {
	f.Add([]byte(`{"level":"info","msg":"a \"quoted\" word","path":"C:\\tmp"}`), 0)
	f.Add([]byte("\"\"\"\"\"\"\"\"\\\\\\\\\\\\\\\\\x01é\"\xff\"\n"), 3)
	f.Fuzz(func(t *testing.T, s []byte, prefix int) {
		pre := bytes.Repeat([]byte{'p'}, prefix&63)
		want, wantInv := appendJSONStringRef(append([]byte(nil), pre...), s)
		got, gotInv := AppendJSONString(append([]byte(nil), pre...), s)
		if !bytes.Equal(got, want) || gotInv != wantInv {
			t.Fatalf("AppendJSONString(%q) = %q, %d; want %q, %d", s, got, gotInv, want, wantInv)
		}
	})
}
