package msgpack

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	vm "github.com/vmihailenco/msgpack/v5"
)

// oracle encodes v with the reference library.
func oracle(t *testing.T, v any) []byte {
	t.Helper()
	b, err := vm.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSkipMatchesReferenceEncodings(t *testing.T) {
	values := []any{
		nil, true, false, 0, 1, -1, -33, 127, 128, 255, 256, 65535, 65536, -129, -32769,
		int64(math.MinInt64), uint64(math.MaxUint64), 1.5, float32(2.5), "", "a", strings.Repeat("x", 31),
		strings.Repeat("x", 32), strings.Repeat("y", 300), strings.Repeat("z", 70000), []byte{}, []byte("bin"),
		bytes.Repeat([]byte{1}, 70000), []any{}, []any{1, "a", nil}, make([]any, 20), make([]any, 70000),
		map[string]any{}, map[string]any{"a": 1, "b": []any{map[string]any{"c": "d"}}},
	}
	for _, v := range values {
		b := oracle(t, v)
		n, err := Skip(append(b, 0xc0), 10)
		if err != nil || n != len(b) {
			t.Errorf("Skip(%T) = %d, %v; want %d", v, n, err, len(b))
		}
		for cut := 0; cut < len(b); cut += 1 + len(b)/50 {
			if _, err := Skip(b[:cut], 10); !errors.Is(err, ErrShort) {
				t.Errorf("Skip(%T cut at %d/%d) = %v; want ErrShort", v, cut, len(b), err)
			}
		}
	}
}

func TestSkipRejects(t *testing.T) {
	if _, err := Skip([]byte{0xc1}, 10); err == nil || errors.Is(err, ErrShort) {
		t.Errorf("0xc1: got %v, want invalid", err)
	}
	deep := append(bytes.Repeat([]byte{0x91}, 1000), 0xc0)
	if _, err := Skip(deep, 100); !errors.Is(err, ErrDepth) {
		t.Errorf("deep nesting: got %v, want ErrDepth", err)
	}
	// A declared 4G-element array with a few bytes is short, not a huge allocation.
	if _, err := Skip([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}, 10); !errors.Is(err, ErrShort) {
		t.Errorf("huge array: got %v, want ErrShort", err)
	}
	if _, err := Skip([]byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, 10); !errors.Is(err, ErrShort) {
		t.Errorf("huge str: got %v, want ErrShort", err)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 32, math.MaxInt64, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64} {
		b := AppendInt(nil, v)
		var got int64
		if err := vm.Unmarshal(b, &got); err != nil || got != v {
			t.Errorf("AppendInt(%d): reference decodes %d, %v", v, got, err)
		}
		r, rest, err := ReadInt(b)
		if err != nil || r != v || len(rest) != 0 {
			t.Errorf("ReadInt(AppendInt(%d)) = %d, %v", v, r, err)
		}
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("s", n)
		var got string
		if err := vm.Unmarshal(AppendString(nil, s), &got); err != nil || got != s {
			t.Errorf("AppendString(len %d): %v", n, err)
		}
		var gb []byte
		if err := vm.Unmarshal(AppendBin(nil, []byte(s)), &gb); err != nil || string(gb) != s {
			t.Errorf("AppendBin(len %d): %v", n, err)
		}
		for _, hdr := range [][]byte{AppendArrayHeader(nil, n), AppendMapHeader(nil, n)} {
			if k, _, _, err := header(hdr); err != nil || k == Invalid {
				t.Errorf("header len %d: %v", n, err)
			}
		}
	}
	m := AppendMapHeader(nil, 3)
	m = AppendString(m, "a")
	m = AppendFloat64(m, 1.25)
	m = AppendString(m, "b")
	m = AppendBool(m, true)
	m = AppendString(m, "c")
	m = AppendNil(m)
	var got map[string]any
	if err := vm.Unmarshal(m, &got); err != nil || got["a"] != 1.25 || got["b"] != true || got["c"] != nil {
		t.Errorf("map: %v %v", got, err)
	}
	v, ok, err := MapGet(m, "b", 10)
	if err != nil || !ok || !bytes.Equal(v, []byte{0xc3}) {
		t.Errorf("MapGet b = %x %v %v", v, ok, err)
	}
	if _, ok, _ := MapGet(m, "zz", 10); ok {
		t.Error("MapGet found a missing key")
	}
}

func TestEventTime(t *testing.T) {
	b := AppendEventTime(nil, 1700000000, 123456789)
	typ, data, rest, err := ReadExt(b)
	if err != nil || typ != 0 || len(data) != 8 || len(rest) != 0 {
		t.Fatalf("ReadExt = %d %x %v", typ, data, err)
	}
	if b[0] != 0xd7 {
		t.Errorf("EventTime must be fixext8, got 0x%02x", b[0])
	}
}

func BenchmarkMapGet(b *testing.B) {
	m := oracle(&testing.T{}, map[string]any{
		"container_id": strings.Repeat("a", 64), "container_name": "/app", "source": "stdout",
		"log": strings.Repeat("l", 200),
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := MapGet(m, "log", 10); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
