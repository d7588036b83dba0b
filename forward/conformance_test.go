package forward

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

const T0 = 1700000000 // 2023-11-14T22:13:20Z

// nowTime marks an expected event time of "when the server received it".
const nowTime = event.Time(math.MinInt64)

func at(sec, nsec int64) event.Time { return event.FromUnix(sec, nsec) }

// confCase is one row of the conformance table: bytes a client sends on
// one connection, and what must come of them.
type confCase struct {
	name string
	cfg  func(*config.Source) // a dedicated server with this change
	send [][]byte             // written one after the other
	// split > 0 writes every piece in writes of split bytes.
	split int
	want  []got    // events ingested, in order
	acks  [][]byte // raw chunk values of the acks, in order
	// closed: the server closes the connection (after acks). Otherwise a
	// probe request with an ack follows the case and must be acked last.
	closed bool
	// halfClose: the client shuts its write side after sending.
	halfClose bool
	// quiet: the client sends nothing and closes.
	quiet   bool
	errs    map[string]float64 // errors_total increments; every other reason must stay
	invalid map[string]float64 // invalid_events_total increments
}

var (
	r1 = rec("container_id", strings.Repeat("ab", 32), "container_name", "/web", "source", "stdout", "log", "hello")
	r2 = rec("log", "world", "source", "stderr")
)

func ext8EventTime(sec, nsec uint32) []byte {
	b := []byte{0xc7, 8, 0}
	b = binary.BigEndian.AppendUint32(b, sec)
	return binary.BigEndian.AppendUint32(b, nsec)
}

func timestamp32(sec uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0xd6, 0xff}, sec)
}

func timestamp64(sec, nsec uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{0xd7, 0xff}, nsec<<34|sec)
}

func timestamp96(sec int64, nsec uint32) []byte {
	b := binary.BigEndian.AppendUint32([]byte{0xc7, 12, 0xff}, nsec)
	return binary.BigEndian.AppendUint64(b, uint64(sec))
}

func rawInt(prefix byte, v uint64, size int) []byte {
	b := []byte{prefix}
	for i := size - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func packedEntries() []byte {
	return cat(entry(et(T0, 1), r1), entry(et(T0, 2), r2))
}

var wantPacked = []got{{"app", at(T0, 1), r1}, {"app", at(T0, 2), r2}}

func nested(depth int, inner []byte) []byte {
	b := bytes.Repeat([]byte{0x91}, depth)
	return append(b, inner...)
}

func conformanceCases() []confCase {
	msg := func(t []byte, r []byte, opt ...[]byte) []byte {
		return arr(append([][]byte{str("app"), t, r}, opt...)...)
	}
	packed := func(payload []byte, opt []byte) []byte { return arr(str("app"), bin(payload), opt) }
	bomb := cat(bytes.Repeat(entry(et(T0, 0), rec("log", strings.Repeat("x", 1000))), 8<<10)) // 8 MiB
	deepRecord := obj(str("k"), nested(150, num(1)))
	bigRec := rec("log", strings.Repeat("y", 8192))
	big := msg(num(T0), bigRec, chunkOpt("big"))
	smallLimits := func(s *config.Source) {
		s.ChunkSizeLimit = 1 << 20
		s.MaxDecompressedSize = 1 << 20
	}
	return []confCase{
		{name: "message/int_time", send: [][]byte{msg(num(T0), r1, chunkOpt("c1"))},
			want: []got{{"app", at(T0, 0), r1}}, acks: [][]byte{str("c1")}},
		{name: "message/eventtime_fixext8", send: [][]byte{msg(et(T0, 123456789), r1, chunkOpt("c2"))},
			want: []got{{"app", at(T0, 123456789), r1}}, acks: [][]byte{str("c2")}},
		{name: "message/eventtime_ext8", send: [][]byte{msg(ext8EventTime(T0, 999999999), r1, chunkOpt("c3"))},
			want: []got{{"app", at(T0, 999999999), r1}}, acks: [][]byte{str("c3")}},
		{name: "message/no_option", send: [][]byte{msg(num(T0), r1)},
			want: []got{{"app", at(T0, 0), r1}}},
		{name: "message/nil_option_docker_18.09", send: [][]byte{msg(num(T0), r1, nilv())},
			want: []got{{"app", at(T0, 0), r1}}},
		{name: "message/float_time", send: [][]byte{msg(msgpack.AppendFloat64(nil, T0+0.25), r1)},
			want: []got{{"app", at(T0, 250000000), r1}}},
		{name: "message/timestamp_ext32", send: [][]byte{msg(timestamp32(T0), r1)},
			want: []got{{"app", at(T0, 0), r1}}},
		{name: "message/timestamp_ext64", send: [][]byte{msg(timestamp64(T0, 42), r1)},
			want: []got{{"app", at(T0, 42), r1}}},
		{name: "message/timestamp_ext96", send: [][]byte{msg(timestamp96(T0, 7), r1)},
			want: []got{{"app", at(T0, 7), r1}}},
		{name: "message/time_zero_is_receive_time", send: [][]byte{msg(num(0), r1), msg(et(0, 0), r2)},
			want: []got{{"app", nowTime, r1}, {"app", nowTime, r2}}},
		{name: "message/integer_widths", send: [][]byte{
			msg(rawInt(0xce, T0, 4), r1), msg(rawInt(0xcf, T0+1, 8), r1),
			msg(rawInt(0xd3, T0+2, 8), r1), msg(rawInt(0xd2, T0+3, 4), r1), msg(rawInt(0xcd, 300, 2), r1)},
			want: []got{{"app", at(T0, 0), r1}, {"app", at(T0+1, 0), r1}, {"app", at(T0+2, 0), r1},
				{"app", at(T0+3, 0), r1}, {"app", at(300, 0), r1}}},
		{name: "message/bad_time_bool_acked", send: [][]byte{msg([]byte{0xc3}, r1, chunkOpt("bt"))},
			acks: [][]byte{str("bt")}, invalid: map[string]float64{"bad_time": 1}},
		{name: "message/eventtime_nsec_out_of_range", send: [][]byte{msg(et(T0, 1e9), r1, chunkOpt("ns"))},
			acks: [][]byte{str("ns")}, invalid: map[string]float64{"bad_time": 1}},
		{name: "message/uint64_time_overflow", send: [][]byte{msg(rawInt(0xcf, math.MaxUint64, 8), r1, chunkOpt("of"))},
			acks: [][]byte{str("of")}, invalid: map[string]float64{"bad_time": 1}},
		{name: "message/record_not_map", send: [][]byte{msg(num(T0), str("just a string"), chunkOpt("nm")), msg(num(T0), nilv())},
			acks: [][]byte{str("nm")}, invalid: map[string]float64{"record_not_map": 2}},
		{name: "forward/two_entries", send: [][]byte{arr(str("app"), arr(entry(num(T0), r1), entry(et(T0, 5), r2)), chunkOpt("f1"))},
			want: []got{{"app", at(T0, 0), r1}, {"app", at(T0, 5), r2}}, acks: [][]byte{str("f1")}},
		{name: "forward/invalid_entries_skipped", send: [][]byte{arr(str("app"), arr(
			entry(num(T0), r1), entry(num(T0), str("x")), num(5), arr(num(T0)),
			cat([]byte{0xdc, 0, 2}, et(T0, 9), r2)), chunkOpt("f2"))},
			want:    []got{{"app", at(T0, 0), r1}, {"app", at(T0, 9), r2}},
			acks:    [][]byte{str("f2")},
			invalid: map[string]float64{"record_not_map": 1, "bad_entry": 2}},
		{name: "forward/zero_entries", send: [][]byte{arr(str("app"), arr(), chunkOpt("f0"))},
			acks: [][]byte{str("f0")}},
		{name: "packed/bin", send: [][]byte{packed(packedEntries(), chunkOpt("p1"))},
			want: wantPacked, acks: [][]byte{str("p1")}},
		{name: "packed/str", send: [][]byte{arr(str("app"), msgpack.AppendStringBytes(nil, packedEntries()), chunkOpt("p2"))},
			want: wantPacked, acks: [][]byte{str("p2")}},
		{name: "packed/compressed_text", send: [][]byte{packed(packedEntries(), obj(str("compressed"), str("text"), str("chunk"), str("p3")))},
			want: wantPacked, acks: [][]byte{str("p3")}},
		{name: "packed/empty_payload", send: [][]byte{packed(nil, chunkOpt("p4"))}, acks: [][]byte{str("p4")}},
		{name: "packed/fluentbit_v1.5_metadata", send: [][]byte{packed(cat(
			entry(arr(et(T0, 1), obj()), r1), entry(arr(et(T0, 2), obj(str("k"), str("v"))), r2)), chunkOpt("fb"))},
			want: wantPacked, acks: [][]byte{str("fb")}},
		{name: "compressed/gzip", send: [][]byte{packed(gz(packedEntries()), obj(str("compressed"), str("gzip"), str("chunk"), str("g1")))},
			want: wantPacked, acks: [][]byte{str("g1")}},
		{name: "compressed/gzip_two_members", send: [][]byte{packed(gz(entry(et(T0, 1), r1), entry(et(T0, 2), r2)), obj(str("compressed"), str("gzip"), str("chunk"), str("g2")))},
			want: wantPacked, acks: [][]byte{str("g2")}},
		{name: "compressed/gzip_sniffed", send: [][]byte{packed(gz(packedEntries()), chunkOpt("g3"))},
			want: wantPacked, acks: [][]byte{str("g3")}},
		{name: "compressed/zstd", send: [][]byte{packed(zst(packedEntries()), obj(str("compressed"), str("zstd"), str("chunk"), str("z1")))},
			want: wantPacked, acks: [][]byte{str("z1")}},
		{name: "compressed/zstd_sniffed", send: [][]byte{packed(zst(packedEntries()), chunkOpt("z2"))},
			want: wantPacked, acks: [][]byte{str("z2")}},
		{name: "compressed/empty_gzip_payload", send: [][]byte{packed(nil, obj(str("compressed"), str("gzip"), str("chunk"), str("g4")))},
			acks: [][]byte{str("g4")}},
		{name: "option/unknown_keys_and_size_hint", send: [][]byte{packed(packedEntries(), obj(
			str("size"), rawInt(0xce, math.MaxUint32, 4), str("fluent_signal"), num(0),
			str("future"), arr(num(1), obj()), str("chunk"), str("u1")))},
			want: wantPacked, acks: [][]byte{str("u1")}},
		{name: "option/chunk_int_echoed_same_type", send: [][]byte{msg(num(T0), r1, obj(str("chunk"), rawInt(0xce, 7, 4)))},
			want: []got{{"app", at(T0, 0), r1}}, acks: [][]byte{rawInt(0xce, 7, 4)}},
		{name: "option/chunk_bin_echoed_same_type", send: [][]byte{msg(num(T0), r1, obj(str("chunk"), bin([]byte("id"))))},
			want: []got{{"app", at(T0, 0), r1}}, acks: [][]byte{bin([]byte("id"))}},
		{name: "option/chunk_nil_not_acked", send: [][]byte{msg(num(T0), r1, obj(str("chunk"), nilv()))},
			want: []got{{"app", at(T0, 0), r1}}},
		{name: "stream/heartbeats_between_requests", send: [][]byte{nilv(), msg(num(T0), r1, chunkOpt("h1")), nilv(), nilv(), msg(num(T0), r2, chunkOpt("h2"))},
			want: []got{{"app", at(T0, 0), r1}, {"app", at(T0, 0), r2}}, acks: [][]byte{str("h1"), str("h2")}},
		{name: "stream/pipelined_in_one_write", send: func() [][]byte {
			var b []byte
			for i := range 50 {
				b = append(b, msg(num(T0+int64(i)), r1, chunkOpt(fmt.Sprint("p", i)))...)
			}
			return [][]byte{b}
		}(), want: func() []got {
			var g []got
			for i := range 50 {
				g = append(g, got{"app", at(T0+int64(i), 0), r1})
			}
			return g
		}(), acks: func() [][]byte {
			var a [][]byte
			for i := range 50 {
				a = append(a, str(fmt.Sprint("p", i)))
			}
			return a
		}()},
		{name: "stream/one_byte_per_read", split: 1, send: [][]byte{
			packed(gz(packedEntries()), chunkOpt("b1")), nilv(), msg(et(T0, 3), r2, chunkOpt("b2"))},
			want: append(append([]got{}, wantPacked...), got{"app", at(T0, 3), r2}), acks: [][]byte{str("b1"), str("b2")}},
		{name: "stream/connect_then_close", quiet: true},
		{name: "malformed/truncated_frame", halfClose: true, closed: true,
			send: [][]byte{msg(num(T0), r1, chunkOpt("t"))[:20]}, errs: map[string]float64{reasonReadError: 1}},
		{name: "malformed/byte_c1", send: [][]byte{{0xc1}}, closed: true, errs: map[string]float64{reasonInvalidMsgpack: 1}},
		{name: "malformed/valid_then_c1_inside_record", closed: true,
			send: [][]byte{msg(num(T0), r1, chunkOpt("v")), cat([]byte{0x93}, str("app"), num(T0), []byte{0x81, 0xc1})},
			want: []got{{"app", at(T0, 0), r1}}, acks: [][]byte{str("v")}, errs: map[string]float64{reasonInvalidMsgpack: 1}},
		{name: "malformed/top_level_map", send: [][]byte{obj(str("tag"), str("app"))}, errs: map[string]float64{reasonBadRequest: 1}},
		{name: "malformed/top_level_int", send: [][]byte{num(5)}, errs: map[string]float64{reasonBadRequest: 1}},
		// fluentd's JSON variant is not supported: every ASCII byte is a
		// msgpack positive fixint, a request of the wrong type.
		{name: "malformed/top_level_json_text", send: [][]byte{[]byte(`["app",1,{}]`)}, errs: map[string]float64{reasonBadRequest: 12}},
		{name: "malformed/array_too_short", send: [][]byte{arr(str("app")), arr(str("app"), num(T0))},
			errs: map[string]float64{reasonBadRequest: 2}},
		{name: "malformed/array_too_long", send: [][]byte{arr(str("app"), num(T0), r1, chunkOpt("x"), num(1))},
			errs: map[string]float64{reasonBadRequest: 1}},
		{name: "malformed/tag_int", send: [][]byte{arr(num(1), num(T0), r1, chunkOpt("x"))}, errs: map[string]float64{reasonBadRequest: 1}},
		{name: "malformed/tag_bin", send: [][]byte{arr(bin([]byte("app")), num(T0), r1, chunkOpt("x"))}, errs: map[string]float64{reasonBadRequest: 1}},
		{name: "malformed/option_not_map", send: [][]byte{msg(num(T0), r1, str("chunk"))}, errs: map[string]float64{reasonBadRequest: 1}},
		{name: "malformed/unknown_compression", send: [][]byte{packed(packedEntries(), obj(str("compressed"), str("lz4"), str("chunk"), str("x")))},
			errs: map[string]float64{reasonBadRequest: 1}},
		{name: "malformed/bad_gzip", send: [][]byte{packed(append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{0x55}, 40)...), obj(str("compressed"), str("gzip"), str("chunk"), str("x")))},
			errs: map[string]float64{reasonBadCompression: 1}},
		{name: "malformed/gzip_cut_short", send: [][]byte{packed(gz(packedEntries())[:30], chunkOpt("x"))},
			errs: map[string]float64{reasonBadCompression: 1}},
		{name: "malformed/bad_zstd", send: [][]byte{packed(append(append([]byte{}, zstdMagic...), bytes.Repeat([]byte{0xee}, 40)...), chunkOpt("x"))},
			errs: map[string]float64{reasonBadCompression: 1}},
		{name: "malformed/packed_trailing_partial_entry", send: [][]byte{packed(cat(packedEntries(), entry(et(T0, 3), r1)[:15]), chunkOpt("x"))},
			errs: map[string]float64{reasonBadEntries: 1}},
		{name: "malformed/gzip_packed_trailing_partial_entry", send: [][]byte{packed(gz(cat(packedEntries(), entry(et(T0, 3), r1)[:15])), chunkOpt("x"))},
			errs: map[string]float64{reasonBadEntries: 1}},
		{name: "malformed/packed_invalid_byte", send: [][]byte{packed(cat(packedEntries(), []byte{0x92, 0xc1}), chunkOpt("x"))},
			errs: map[string]float64{reasonBadEntries: 1}},
		{name: "malformed/packed_huge_declared_count", send: [][]byte{packed([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, chunkOpt("x"))},
			errs: map[string]float64{reasonBadEntries: 1}},
		{name: "limits/huge_declared_str_length", closed: true,
			send: [][]byte{cat([]byte{0x93}, str("app"), []byte{0xdb, 0xff, 0xff, 0xff, 0xff})}, errs: map[string]float64{reasonTooLarge: 1}},
		{name: "limits/huge_declared_bin_length", closed: true,
			send: [][]byte{cat([]byte{0x93}, str("app"), []byte{0xc6, 0xff, 0xff, 0xff, 0xf0})}, errs: map[string]float64{reasonTooLarge: 1}},
		{name: "limits/huge_declared_array_count", closed: true,
			send: [][]byte{{0xdd, 0xff, 0xff, 0xff, 0xff}}, errs: map[string]float64{reasonTooLarge: 1}},
		{name: "limits/huge_declared_map_count", closed: true,
			send: [][]byte{cat([]byte{0x94}, str("app"), num(T0), []byte{0xdf, 0xff, 0xff, 0xff, 0xff})}, errs: map[string]float64{reasonTooLarge: 1}},
		{name: "limits/nesting_1e6_deep", closed: true, send: [][]byte{bytes.Repeat([]byte{0x91}, 1e6)}, errs: map[string]float64{reasonTooDeep: 1}},
		{name: "limits/record_nesting_over_max_depth", closed: true, send: [][]byte{msg(num(T0), deepRecord, chunkOpt("x"))}, errs: map[string]float64{reasonTooDeep: 1}},
		{name: "limits/packed_entry_over_max_depth", closed: true, send: [][]byte{packed(entry(num(T0), deepRecord), chunkOpt("x"))}, errs: map[string]float64{reasonTooDeep: 1}},
		{name: "limits/request_over_chunk_size_limit", cfg: func(s *config.Source) { s.ChunkSizeLimit = config.Size(len(big) - 1) }, closed: true,
			send: [][]byte{big}, errs: map[string]float64{reasonTooLarge: 1}},
		{name: "limits/request_at_chunk_size_limit", cfg: func(s *config.Source) { s.ChunkSizeLimit = config.Size(len(big)) },
			send: [][]byte{big}, want: []got{{"app", at(T0, 0), bigRec}}, acks: [][]byte{str("big")}},
		{name: "limits/gzip_bomb", cfg: smallLimits, closed: true,
			send: [][]byte{packed(gz(bomb), obj(str("compressed"), str("gzip"), str("chunk"), str("x")))}, errs: map[string]float64{reasonDecompressedSize: 1}},
		{name: "limits/zstd_bomb", cfg: smallLimits, closed: true,
			send: [][]byte{packed(zst(bomb), chunkOpt("x"))}, errs: map[string]float64{reasonDecompressedSize: 1}},
		{name: "consume/error_means_no_ack", send: [][]byte{
			arr(str("fail"), num(T0), r1, chunkOpt("no")), msg(num(T0), r2, chunkOpt("yes"))},
			want: []got{{"app", at(T0, 0), r2}}, acks: [][]byte{str("yes")}, errs: map[string]float64{reasonConsumeFailed: 1}},
		{name: "consume/shutdown_error_closes", closed: true, send: [][]byte{
			msg(num(T0), r2, chunkOpt("yes")), arr(str("cancel"), num(T0), r1, chunkOpt("no")), msg(num(T0), r2, chunkOpt("never"))},
			want: []got{{"app", at(T0, 0), r2}}, acks: [][]byte{str("yes")}, errs: map[string]float64{reasonConsumeFailed: 1}},
	}
}

func TestConformance(t *testing.T) {
	cases := conformanceCases()
	if len(cases) < 35 {
		t.Fatalf("only %d cases", len(cases))
	}
	coll := newCollector()
	coll.fail["fail"] = fmt.Errorf("buffer full")
	coll.fail["cancel"] = fmt.Errorf("router stopping: %w", context.Canceled)
	shared := startServer(t, testSource(), coll)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := shared
			if tc.cfg != nil {
				src := testSource()
				tc.cfg(&src)
				c := newCollector()
				ts = startServer(t, src, c)
			}
			runCase(t, ts, tc)
		})
	}
}

var (
	probe        = arr(str("probe"), num(T0), rec("p", "p"), chunkOpt("probe"))
	witnessReq   = arr(str("witness"), num(T0), rec("w", "w"), chunkOpt("witness"))
	noMoreWindow = 30 * time.Millisecond
)

func runCase(t *testing.T, ts *testServer, tc confCase) {
	base := ts.openConns()
	// A connection opened before the case must keep working through it.
	witness := dial(t, ts.Addr())
	witnessAck := func() {
		t.Helper()
		if err := witness.send(witnessReq, 0); err != nil {
			t.Fatalf("witness send: %v", err)
		}
		if a, err := witness.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("witness")) {
			t.Fatalf("witness ack: %x, %v", a, err)
		}
	}
	witnessAck()
	ts.coll.take()
	errsBefore, invBefore := ts.errorCounts(), ts.invalidCounts()

	start := event.Now()
	c := dial(t, ts.Addr())
	for _, b := range tc.send {
		if err := c.send(b, tc.split); err != nil && !tc.closed {
			t.Fatalf("send: %v", err)
		}
	}
	switch {
	case tc.quiet:
		c.nc.Close()
	case tc.halfClose:
		c.nc.(*net.TCPConn).CloseWrite()
	case !tc.closed:
		if err := c.send(probe, 0); err != nil {
			t.Fatalf("send probe: %v", err)
		}
	}
	if !tc.quiet {
		for i, want := range tc.acks {
			a, err := c.readAck(5 * time.Second)
			if err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
			if !bytes.Equal(a, want) {
				t.Fatalf("ack %d: got %x, want %x", i, a, want)
			}
		}
		if tc.closed {
			c.expectClosed(5 * time.Second)
		} else {
			a, err := c.readAck(5 * time.Second)
			if err != nil || !bytes.Equal(a, str("probe")) {
				t.Fatalf("probe ack: got %x, %v (an ack that should not be there?)", a, err)
			}
			if v, err := c.readValue(noMoreWindow); !isTimeout(err) {
				t.Fatalf("unexpected bytes after the probe ack: %x, %v", v, err)
			}
		}
	}
	end := event.Now()
	witnessAck()
	c.nc.Close()
	witness.nc.Close()
	ts.waitConns(t, base)

	gotEvents := ts.coll.take("probe", "witness")
	if len(gotEvents) != len(tc.want) {
		t.Fatalf("got %d events, want %d: %+v", len(gotEvents), len(tc.want), gotEvents)
	}
	for i, w := range tc.want {
		g := gotEvents[i]
		if g.Tag != w.Tag || !bytes.Equal(g.Record, w.Record) {
			t.Errorf("event %d: got tag %q record %x, want %q %x", i, g.Tag, g.Record, w.Tag, w.Record)
		}
		if w.Time == nowTime {
			if g.Time < start || g.Time > end {
				t.Errorf("event %d: time %v is not the receive time (%v..%v)", i, g.Time.Std(), start.Std(), end.Std())
			}
		} else if g.Time != w.Time {
			t.Errorf("event %d: time %v, want %v", i, g.Time.Std(), w.Time.Std())
		}
	}
	for reason, after := range ts.errorCounts() {
		if d := after - errsBefore[reason]; d != tc.errs[reason] {
			t.Errorf("errors_total{reason=%q} grew by %v, want %v", reason, d, tc.errs[reason])
		}
	}
	for reason, after := range ts.invalidCounts() {
		if d := after - invBefore[reason]; d != tc.invalid[reason] {
			t.Errorf("invalid_events_total{reason=%q} grew by %v, want %v", reason, d, tc.invalid[reason])
		}
	}
	if !ts.alive() {
		t.Fatal("server stopped")
	}
}
