package forward

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

func TestReadTime(t *testing.T) {
	now := event.FromUnix(T0+100, 7)
	for _, tc := range []struct {
		name string
		in   []byte
		want event.Time
		ok   bool
	}{
		{"fixint", num(5), at(5, 0), true},
		{"negative_int", num(-5), at(-5, 0), true},
		{"zero", num(0), now, true},
		{"nil", nilv(), now, true},
		{"uint64_max_sec", rawInt(0xcf, maxSec, 8), at(maxSec, 0), true},
		{"uint64_over", rawInt(0xcf, maxSec+1, 8), 0, false},
		{"int64_min", rawInt(0xd3, 1<<63, 8), 0, false},
		{"float", msgpack.AppendFloat64(nil, -1.5), at(-2, 5e8), true},
		{"float_below_one_is_now", msgpack.AppendFloat64(nil, 0.999), now, true},
		{"float32", []byte{0xca, 0x4f, 0x80, 0, 0}, at(1<<32, 0), true},
		{"float_nan", msgpack.AppendFloat64(nil, math.NaN()), 0, false},
		{"float_inf", msgpack.AppendFloat64(nil, math.Inf(1)), 0, false},
		{"eventtime_zero_sec_is_now", et(0, 5), now, true},
		{"eventtime_max", et(math.MaxUint32, 999999999), at(math.MaxUint32, 999999999), true},
		{"eventtime_nsec_1e9", et(T0, 1e9), 0, false},
		{"eventtime_fixext4", []byte{0xd6, 0, 1, 2, 3, 4}, 0, false},
		{"timestamp32", timestamp32(T0), at(T0, 0), true},
		{"timestamp64_max_nsec", timestamp64(T0, 999999999), at(T0, 999999999), true},
		{"timestamp64_bad_nsec", timestamp64(T0, 1e9), 0, false},
		{"timestamp96_negative", timestamp96(-T0, 1), at(-T0, 1), true},
		{"timestamp96_huge", timestamp96(math.MaxInt64, 0), 0, false},
		{"other_ext", []byte{0xd7, 5, 0, 0, 0, 1, 0, 0, 0, 0}, 0, false},
		{"v1.5_pair", arr(et(T0, 3), obj()), at(T0, 3), true},
		{"v1.5_pair_nil_meta", arr(et(T0, 3), nilv()), at(T0, 3), true},
		{"v1.5_meta_not_map", arr(et(T0, 3), num(1)), 0, false},
		{"v1.5_nested_pair", arr(arr(et(T0, 3), obj()), obj()), 0, false},
		{"v1.5_three", arr(et(T0, 3), obj(), obj()), 0, false},
		{"v1.5_bad_inner", arr(str("x"), obj()), 0, false},
		{"str", str("2026-11-22"), 0, false},
		{"map", obj(str("a"), num(1)), 0, false},
		{"bool", []byte{0xc2}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(bytes.Clone(tc.in), 0xc0) // a following value must be left alone
			got, rest, ok, err := readTime(in, now, 8)
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("got %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
			if !bytes.Equal(rest, []byte{0xc0}) {
				t.Fatalf("rest %x", rest)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0xd7, 0}, {0xc1}, {0x92, 0xc1}, {0x91, 0x91, 0x91, 0x91}} {
		if _, _, _, err := readTime(bad, now, 2); err == nil {
			t.Errorf("readTime(%x): no error", bad)
		}
	}
}

// TestFramerSplits frames a stream of requests fed in every kind of piece
// and checks that the boundaries found never depend on the pieces.
func TestFramerSplits(t *testing.T) {
	reqs := [][]byte{
		nilv(),
		arr(str("app"), num(T0), r1, chunkOpt("a")),
		packedRequest(20, 250),
		arr(str("app"), arr(entry(et(T0, 1), r1), entry(et(T0, 2), obj(str("deep"), nested(10, obj())))), nilv()),
		arr(str("e"), bin(nil)),
		arr(str("big"), msgpack.AppendStringBytes(nil, bytes.Repeat([]byte("s"), 70000))),
	}
	stream := cat(reqs...)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		fr := newFramer(1<<20, 20)
		var got []int
		start, end := 0, 0
		for start < len(stream) {
			switch trial % 3 {
			case 0:
				end++
			case 1:
				end += 1 + rng.IntN(64)
			default:
				end += 1 + rng.IntN(8192)
			}
			end = min(end, len(stream))
			for {
				n, err := fr.next(stream[start:end])
				if err != nil {
					t.Fatalf("trial %d: %v", trial, err)
				}
				if n == 0 {
					break
				}
				got = append(got, n)
				start += n
				fr.reset()
			}
			if end == len(stream) && start < len(stream) {
				t.Fatalf("trial %d: %d bytes left unframed", trial, len(stream)-start)
			}
		}
		if len(got) != len(reqs) {
			t.Fatalf("trial %d: %d requests, want %d", trial, len(got), len(reqs))
		}
		for i, r := range reqs {
			if got[i] != len(r) {
				t.Fatalf("trial %d: request %d is %d bytes, framed %d", trial, i, len(r), got[i])
			}
		}
	}
}

// TestFramerKeepsProgress checks the framer's position advances with the
// bytes fed, so a large request arriving in small reads is scanned once.
func TestFramerKeepsProgress(t *testing.T) {
	entries := make([][]byte, 2000)
	for i := range entries {
		entries[i] = entry(et(T0, int64(i)), dockerRecord(250))
	}
	req := arr(str("app"), arr(entries...))
	fr := newFramer(64<<20, 100)
	for end := 4096; end < len(req); end += 4096 {
		if n, err := fr.next(req[:end]); n != 0 || err != nil {
			t.Fatalf("framed %d %v before the end", n, err)
		}
		// Everything but the last value's head is consumed.
		if fr.pos < end-300 || fr.pos > end+300 {
			t.Fatalf("after %d bytes the framer is at %d", end, fr.pos)
		}
	}
	if n, err := fr.next(req); n != len(req) || err != nil {
		t.Fatalf("framed %d %v, want %d", n, err, len(req))
	}
}

func TestFramerLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int
		depth int
		want  error
	}{
		{"exactly_at_limit", arr(str("abc")), 5, 4, nil},
		{"one_over", arr(str("abcd")), 5, 4, errFrameTooLarge},
		{"declared_str_over", []byte{0x91, 0xdb, 0, 0, 0x10, 0}, 4096, 4, errFrameTooLarge},
		{"declared_items_over", []byte{0xdc, 0x10, 0}, 4096, 4, errFrameTooLarge},
		{"declared_pairs_over", []byte{0xde, 0x08, 0x01}, 4096, 4, errFrameTooLarge},
		{"depth_at_max", nested(4, num(1)), 100, 4, nil},
		{"depth_over", nested(5, num(1)), 100, 4, errFrameTooDeep},
		{"empty_container_over_depth", nested(4, arr()), 100, 4, errFrameTooDeep},
		{"invalid", []byte{0x91, 0xc1}, 100, 4, errFrameInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFramer(tc.limit, tc.depth)
			n, err := fr.next(tc.in)
			if tc.want == nil {
				if err != nil || n != len(tc.in) {
					t.Fatalf("got %d %v", n, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %d %v, want %v", n, err, tc.want)
			}
		})
	}
}

func TestEncodeHelpers(t *testing.T) {
	var entries []byte
	for i := range 3 {
		entries = AppendEntry(entries, at(T0, int64(i)), r1)
	}
	id := NewChunkID()
	if len(id) != 24 {
		t.Fatalf("chunk id %q", id)
	}
	for _, o := range []Options{{Size: 3, Chunk: id}, {Size: 3, Chunk: id, Compressed: "gzip"}, {}} {
		payload := entries
		if o.Compressed == "gzip" {
			payload = gz(entries)
		}
		req := AppendPackedForward(nil, "enc", payload, o)
		d := newDecoder(20, 1<<20)
		var r request
		if err := d.decode(req, 0, &r); err != nil {
			t.Fatal(err)
		}
		wantChunk := []byte(nil)
		if o.Chunk != "" {
			wantChunk = str(id)
		}
		if len(r.events) != 3 || string(r.tag) != "enc" || !bytes.Equal(r.chunk, wantChunk) || r.events[2].Time != at(T0, 2) {
			t.Fatalf("%+v: decoded %+v", o, r)
		}
	}
}
