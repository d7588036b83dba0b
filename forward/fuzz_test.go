package forward

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/loglimit"
	"github.com/marutalog/maruta/internal/msgpack"
)

// scriptConn is a net.Conn whose reads return the given pieces, one per
// Read (or less when the reader's buffer is smaller), then EOF. Writes are
// kept.
type scriptConn struct {
	reads [][]byte
	out   bytes.Buffer
}

func (c *scriptConn) Read(b []byte) (int, error) {
	for len(c.reads) > 0 && len(c.reads[0]) == 0 {
		c.reads = c.reads[1:]
	}
	if len(c.reads) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.reads[0])
	c.reads[0] = c.reads[0][n:]
	return n, nil
}

func (c *scriptConn) Write(b []byte) (int, error) { return c.out.Write(b) }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 24224}
}
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// streamServer is a Server without listeners, to drive connections from
// scripted bytes. Limits are small so that inputs can reach them.
func streamServer(tb testing.TB, coll *collector) *Server {
	src := testSource()
	src.ChunkSizeLimit = 64 << 10
	src.MaxDecompressedSize = 256 << 10
	src.MaxDepth = 20
	budget := newInflateBudget(int64(src.MaxDecompressedSize), nil)
	m, err := newMetrics(prometheus.NewRegistry(), "fuzz", budget.inUse)
	if err != nil {
		tb.Fatal(err)
	}
	fixed := event.FromUnix(T0, 424242)
	return &Server{budget: budget,
		cfg: src, next: coll, log: slog.New(slog.DiscardHandler), m: m,
		limits: loglimit.NewKeyed(time.Hour), consumeCtx: context.Background(),
		conns: map[*conn]struct{}{}, now: func() event.Time { return fixed },
	}
}

// streamResult is everything observable from one connection.
type streamResult struct {
	events []got
	out    []byte
}

func runStream(s *Server, coll *collector, parts ...[]byte) streamResult {
	sc := &scriptConn{reads: parts}
	c := s.newConn(sc)
	c.serve()
	return streamResult{events: coll.take(), out: sc.out.Bytes()}
}

// FuzzServerStream feeds a byte stream to a connection in two reads split
// at a fuzzed point and checks that the outcome (events handed on, bytes
// written back) is the same as when the stream arrives in one read, that
// every event is a valid map with a valid time, and that everything
// written back is an ack.
func FuzzServerStream(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed.data, seed.split)
	}
	coll := newCollector()
	coll.fail["fail"] = fmt.Errorf("refused")
	s := streamServer(f, coll)
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split)
		if len(data) > 0 {
			cut %= len(data) + 1
		} else {
			cut = 0
		}
		// The fuzzer has no time limit per input: a hang becomes a crash.
		wd := time.AfterFunc(10*time.Second, func() {
			panic(fmt.Sprintf("hang on %d bytes split at %d: %q", len(data), cut, data))
		})
		defer wd.Stop()
		whole := runStream(s, coll, data)
		two := runStream(s, coll, data[:cut], data[cut:])
		if !bytes.Equal(whole.out, two.out) {
			t.Fatalf("written back differs with a split at %d:\n one read:  %x\n two reads: %x", cut, whole.out, two.out)
		}
		if len(whole.events) != len(two.events) {
			t.Fatalf("events differ with a split at %d: %d vs %d", cut, len(whole.events), len(two.events))
		}
		for i := range whole.events {
			a, b := whole.events[i], two.events[i]
			if a.Tag != b.Tag || a.Time != b.Time || !bytes.Equal(a.Record, b.Record) {
				t.Fatalf("event %d differs with a split at %d: %+v vs %+v", i, cut, a, b)
			}
			if msgpack.Peek(a.Record) != msgpack.Map {
				t.Fatalf("event %d: record is a %s", i, msgpack.Peek(a.Record))
			}
			if n, err := msgpack.Skip(a.Record, 20); err != nil || n != len(a.Record) {
				t.Fatalf("event %d: record is not one msgpack value: %d %v", i, n, err)
			}
		}
		for out := whole.out; len(out) > 0; {
			n, err := msgpack.Skip(out, 8)
			if err != nil {
				t.Fatalf("written back is not msgpack: %x", whole.out)
			}
			if _, err := ParseAck(out[:n]); err != nil || out[0] != 0x81 {
				t.Fatalf("written back is not an ack: %x", out[:n])
			}
			out = out[n:]
		}
	})
}

type fuzzSeed struct {
	name  string
	data  []byte
	split uint16
}

// fuzzSeeds covers every mode and the malformed shapes of the conformance
// table; each stream is split in the middle.
func fuzzSeeds() []fuzzSeed {
	var seeds []fuzzSeed
	add := func(name string, parts ...[]byte) {
		data := cat(parts...)
		seeds = append(seeds, fuzzSeed{name, data, uint16(len(data) / 2)})
	}
	for _, tc := range conformanceCases() {
		if strings.Contains(tc.name, "bomb") {
			continue // smaller ones below
		}
		data := cat(tc.send...)
		if len(data) > 8<<10 { // keep the corpus small; what is cut still hits a limit
			data = data[:8<<10]
		}
		add(strings.ReplaceAll(tc.name, "/", "_"), data)
	}
	rec := dockerRecord(250)
	bomb := bytes.Repeat(entry(num(T0), obj(str("k"), bin(make([]byte, 1000)))), 1024) // 1 MiB of zeros
	add("gzip_bomb", arr(str("app"), bin(gz(bomb)), obj(str("compressed"), str("gzip"), str("chunk"), str("b"))))
	add("zstd_bomb", arr(str("app"), bin(zst(bomb)), chunkOpt("b")))
	add("docker_message_eventtime", arr(str("docker.web"), et(T0, 5), rec, chunkOpt("MTIz")))
	add("docker_1809_nil_option", arr(str("docker.web"), num(T0), rec, nilv()))
	add("forward_mode", arr(str("app"), arr(entry(et(T0, 1), rec), entry(num(T0), rec)), chunkOpt("f")))
	add("packed_forward", packedRequest(5, 250))
	add("compressed_gzip", arr(str("app"), bin(gz(packedEntries(), packedEntries())), obj(str("compressed"), str("gzip"), str("chunk"), str("g"))))
	add("compressed_zstd", arr(str("app"), bin(zst(packedEntries())), obj(str("compressed"), str("zstd"), str("chunk"), str("z"))))
	add("fluentbit_metadata", arr(str("fb"), bin(entry(arr(et(T0, 1), obj(str("k"), num(1))), rec)), chunkOpt("fb")))
	add("heartbeats_and_pipeline", nilv(), arr(str("a"), num(T0), rec), nilv(), arr(str("fail"), num(T0), rec, chunkOpt("x")), arr(str("b"), num(0), rec, chunkOpt("y")))
	add("timestamps", arr(str("t"), arr(entry(timestamp32(T0), rec), entry(timestamp64(T0, 1), rec), entry(timestamp96(T0, 2), rec),
		entry(ext8EventTime(T0, 3), rec), entry(msgpack.AppendFloat64(nil, T0+0.5), rec), entry(nilv(), rec))))
	return seeds
}

// TestWriteFuzzSeeds rewrites the committed seed corpus when
// MARUTA_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MARUTA_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set MARUTA_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzServerStream")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzServerStream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range fuzzSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(%d)\n", s.data, s.split)
		if err := os.WriteFile(filepath.Join(dir, "seed_"+s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readCorpusFile parses a file of the go fuzz corpus format for
// FuzzServerStream's arguments.
func readCorpusFile(path string) ([]byte, uint16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" {
		return nil, 0, fmt.Errorf("%s: not a corpus file", path)
	}
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	if !ok {
		return nil, 0, fmt.Errorf("%s: first argument is not []byte", path)
	}
	data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	num, ok := strings.CutPrefix(lines[2], "uint16(")
	if !ok {
		return nil, 0, fmt.Errorf("%s: second argument is not uint16", path)
	}
	split, err := strconv.ParseUint(strings.TrimSuffix(num, ")"), 0, 16)
	return []byte(data), uint16(split), err
}

// TestFuzzCorpusCoversModes checks that the committed corpus reaches every
// request mode and both ways a request fails.
func TestFuzzCorpusCoversModes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzServerStream", "*"))
	if err != nil || len(files) < 40 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	coll := newCollector()
	s := streamServer(t, coll)
	for _, f := range files {
		data, split, err := readCorpusFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cut := int(split) % (len(data) + 1)
		runStream(s, coll, data[:cut], data[cut:])
	}
	for m := range numModes {
		if metricValue(s.m.requests[m]) == 0 {
			t.Errorf("no corpus file reaches mode %s", m)
		}
	}
	for _, r := range []string{reasonInvalidMsgpack, reasonTooLarge, reasonTooDeep, reasonDecompressedSize,
		reasonBadRequest, reasonBadCompression, reasonBadEntries} {
		if s.errorsFor(r) == 0 {
			t.Errorf("no corpus file reaches error %s", r)
		}
	}
}

func (s *Server) errorsFor(reason string) float64 {
	return metricValue(s.m.errors.WithLabelValues(reason))
}
