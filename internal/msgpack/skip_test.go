package msgpack

import (
	"math/rand/v2"
	"testing"
)

// skipRef is Skip without the fast paths for common items.
func skipRef(b []byte, off, depth int) (int, error) {
	t, head, n, err := header(b[off:])
	if err != nil {
		return 0, err
	}
	end := off + head
	switch t {
	case Str, Bin, Ext:
		if uint64(len(b)-end) < n {
			return 0, ErrShort
		}
		return end + int(n) - off, nil
	case Array, Map:
		if depth <= 0 {
			return 0, ErrDepth
		}
		items := n
		if t == Map {
			items = 2 * n
		}
		for ; items > 0; items-- {
			if end >= len(b) {
				return 0, ErrShort
			}
			k, err := skipRef(b, end, depth-1)
			if err != nil {
				return 0, err
			}
			end += k
		}
		return end - off, nil
	}
	if end > len(b) {
		return 0, ErrShort
	}
	return head, nil
}

// TestSkipFastPathsMatchReference compares Skip with skipRef on random
// nested values, every truncation of them and random bytes.
func TestSkipFastPathsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var gen func(depth int) []byte
	gen = func(depth int) []byte {
		switch k := r.IntN(12); {
		case k < 2 && depth > 0:
			n := r.IntN(5)
			b := AppendMapHeader(nil, n)
			for i := 0; i < 2*n; i++ {
				b = append(b, gen(depth-1)...)
			}
			return b
		case k < 3 && depth > 0:
			n := r.IntN(5)
			b := AppendArrayHeader(nil, n)
			for i := 0; i < n; i++ {
				b = append(b, gen(depth-1)...)
			}
			return b
		case k < 6:
			s := make([]byte, []int{0, 5, 31, 32, 200, 255, 256, 70000}[r.IntN(8)])
			return AppendStringBytes(nil, s)
		case k < 7:
			return AppendBin(nil, make([]byte, r.IntN(300)))
		case k < 8:
			return AppendInt(nil, r.Int64N(1<<40)-1<<39)
		case k < 9:
			return AppendFloat64(nil, r.Float64())
		case k < 10:
			return []byte{[]byte{0xc0, 0xc2, 0xc3}[r.IntN(3)]}
		default:
			return AppendEventTime(nil, 1700000000, int64(r.IntN(1e9)))
		}
	}
	check := func(b []byte) {
		t.Helper()
		for _, depth := range []int{0, 1, 3, 10} {
			n1, e1 := Skip(b, depth)
			n2, e2 := skipRef(b, 0, depth)
			if n1 != n2 || (e1 == nil) != (e2 == nil) || (e1 != nil && e1.Error() != e2.Error()) {
				t.Fatalf("Skip(% x, %d) = %d, %v; reference %d, %v", b, depth, n1, e1, n2, e2)
			}
		}
	}
	for i := 0; i < 3000; i++ {
		v := gen(4)
		check(v)
		for cut := 0; cut < len(v) && cut < 400; cut++ {
			check(v[:cut])
		}
		junk := make([]byte, r.IntN(40))
		for j := range junk {
			junk[j] = byte(r.Uint32())
		}
		check(junk)
		check(append(AppendMapHeader(nil, 3), junk...))
	}
}

func BenchmarkSkipDockerRecord(b *testing.B) {
	rec := AppendMapHeader(nil, 13)
	for _, kv := range [][2]string{{"container_id", "3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e"},
		{"container_name", "/web-1"}, {"source", "stdout"}, {"ts", "2026-11-22T13:05:00.123Z"}, {"level", "info"},
		{"method", "GET"}, {"path", "/api/v1/items/12345"}, {"request_id", "9f3c2a1e7b6d5c4f"}, {"ua", "curl/8.5.0"}} {
		rec = AppendString(rec, kv[0])
		rec = AppendString(rec, kv[1])
	}
	rec = AppendInt(AppendString(rec, "status"), 200)
	rec = AppendFloat64(AppendString(rec, "latency_ms"), 12.5)
	rec = AppendInt(AppendString(rec, "bytes"), 5123)
	rec = AppendNil(AppendString(rec, "err"))
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := Skip(rec, 10); err != nil {
			b.Fatal(err)
		}
	}
}
