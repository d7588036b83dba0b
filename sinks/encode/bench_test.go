package encode

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/schema"
	"github.com/marutalog/maruta/sinks/sinktest"
)

// benchChunk builds an in-memory chunk of n Docker-shaped records of 20
// containers.
func benchChunk(b *testing.B, n int, raw bool) *sinktest.Chunk { return benchChunkOf(b, n, raw, 20) }

// benchChunkOf builds an in-memory chunk of n Docker-shaped records of the
// given number of containers, in time order.
func benchChunkOf(b *testing.B, n int, raw bool, containers int) *sinktest.Chunk {
	g := sinktest.NewDockerGen(7, containers, time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC), raw)
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: "bench", Output: "lake", Tag: "docker.shop", Slice: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)}}
	for i := 0; i < n; i++ {
		tag, tm, rec := g.Next(b, i)
		c.Events = append(c.Events, sinktest.Event{Tag: tag, Time: tm, Record: rec})
		c.ChunkInfo.Bytes += int64(len(rec))
	}
	c.ChunkInfo.Events = int64(n)
	return c
}

func benchParquet(b *testing.B, compression string, raw bool) {
	benchParquetOf(b, compression, raw, 20)
}

func benchParquetOf(b *testing.B, compression string, raw bool, containers int) {
	dir := b.TempDir()
	_, out := sinktest.Output(b, dir, "  - type: file\n    name: lake\n    compression: "+compression+"\n")
	store, err := schema.Open(dir, out, nil)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := NewParquet(&out.File.Encoding, store, dir, slog.Default())
	if err != nil {
		b.Fatal(err)
	}
	const n = 100000
	c := benchChunkOf(b, n, raw, containers)
	size := encodeLoop(b, enc, c, n)
	b.ReportMetric(float64(size), "file_bytes")
	b.ReportMetric(float64(c.ChunkInfo.Bytes)/float64(size), "ratio")
}

// encodeLoop encodes c (n records) once per b.Loop iteration, reports
// records/s and records per CPU second, and returns the object's size.
func encodeLoop(b *testing.B, enc Encoder, c *sinktest.Chunk, n int) int64 {
	cw := &countWriter{}
	b.SetBytes(c.ChunkInfo.Bytes)
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		cw.n = 0
		if _, err := enc.Encode(context.Background(), c, cw, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	// Records per CPU second (user+sys of the process, GC included): what
	// one core does, even when other processes share the machine.
	b.ReportMetric(float64(n*b.N)/(cpuTime()-cpu0).Seconds(), "records/cpu-s")
	return cw.n
}

// cpuTime returns the process's user+sys CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)
var _ = config.DefaultRowGroupRows

// BenchmarkParquetEncodeDocker encodes 100k Docker-shaped records whose JSON
// log line was parsed into fields (the default pipeline).
func BenchmarkParquetEncodeDocker(b *testing.B) { benchParquet(b, "zstd", false) }

// BenchmarkParquetEncodeDockerOneContainer: the records of one container
// (a tag per container, as docker.{{.Name}}), already in sort_by order:
// checked in one pass and written without sorting.
func BenchmarkParquetEncodeDockerOneContainer(b *testing.B) { benchParquetOf(b, "zstd", false, 1) }

// BenchmarkParquetEncodeDockerRaw keeps the log line as one string.
func BenchmarkParquetEncodeDockerRaw(b *testing.B) { benchParquet(b, "zstd", true) }

func BenchmarkParquetEncodeDockerSnappy(b *testing.B) { benchParquet(b, "snappy", false) }

// memSampler records the peak resident set size and Go heap while it runs.
type memSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peakRSS  int64
	peakHeap uint64
}

func startMemSampler() *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if rss := readRSS(); rss > s.peakRSS {
				s.peakRSS = rss
			}
			metrics.Read(samples)
			if h := samples[0].Value.Uint64() - samples[1].Value.Uint64(); h > s.peakHeap {
				s.peakHeap = h
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) finish() { close(s.stop); <-s.done }

// readRSS returns the process's resident set size in bytes (Linux), or 0.
func readRSS() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// BenchmarkParquetEncode256MB encodes one chunk of 256 MB of Docker-shaped
// records (MARUTA_BENCH_CHUNK_MB changes the size) streamed from a file into
// a Parquet file, and reports the peak RSS and Go memory (mapped minus
// released) during the encode: the bound is the row group, not the chunk.
// two_pass is the first file of an output (or a chunk with a new key),
// one_pass the steady state with the file plan.
func BenchmarkParquetEncode256MB(b *testing.B) {
	mb := int64(256)
	if s := os.Getenv("MARUTA_BENCH_CHUNK_MB"); s != "" {
		mb, _ = strconv.ParseInt(s, 10, 64)
	}
	dir := b.TempDir()
	_, out := sinktest.Output(b, dir, "  - type: file\n    name: lake\n")
	g := sinktest.NewDockerGen(11, 50, time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC), false)
	c := sinktest.WriteFileChunk(b, dir, delivery.ChunkInfo{ID: "big", Tag: "docker.shop"}, func(_ int, bytes int64) bool { return bytes < mb<<20 },
		func(i int) (string, event.Time, []byte) { return g.Next(b, i) })
	for _, onePass := range []bool{false, true} {
		name := "two_pass"
		if onePass {
			name = "one_pass"
		}
		b.Run(name, func(b *testing.B) {
			store, err := schema.Open(b.TempDir(), out, nil)
			if err != nil {
				b.Fatal(err)
			}
			enc, err := NewParquet(&out.File.Encoding, store, dir, slog.Default())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if onePass {
				if _, err := enc.Encode(ctx, c, io.Discard, true); err != nil { // makes the plan
					b.Fatal(err)
				}
			}
			b.SetBytes(c.ChunkInfo.Bytes)
			var size int64
			var peakRSS int64
			var peakHeap uint64
			var cpu time.Duration
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				debug.FreeOSMemory()
				f, err := os.Create(filepath.Join(dir, "out.parquet"))
				if err != nil {
					b.Fatal(err)
				}
				s := startMemSampler()
				cpu0 := cpuTime()
				b.StartTimer()
				bw := bufio.NewWriterSize(f, 1<<20)
				if _, err := enc.Encode(ctx, c, bw, !onePass); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
				b.StopTimer()
				cpu += cpuTime() - cpu0
				s.finish()
				size, _ = f.Seek(0, io.SeekCurrent)
				f.Close()
				peakRSS, peakHeap = max(peakRSS, s.peakRSS), max(peakHeap, s.peakHeap)
				b.StartTimer()
			}
			b.ReportMetric(float64(c.ChunkInfo.Events), "records")
			// Records per CPU second of the process (the memory sampler's
			// share is small): what one core does, whatever else runs.
			b.ReportMetric(float64(c.ChunkInfo.Events*int64(b.N))/cpu.Seconds(), "records/cpu-s")
			b.ReportMetric(float64(size)/(1<<20), "parquet_MB")
			b.ReportMetric(float64(c.ChunkInfo.Bytes)/float64(size), "ratio")
			b.ReportMetric(float64(peakRSS)/(1<<20), "peak_rss_MB")
			b.ReportMetric(float64(peakHeap)/(1<<20), "peak_go_MB")
		})
	}
}

// BenchmarkLayoutBytesRead writes the same Docker-shaped records (1M;
// MARUTA_BENCH_RECORDS changes it) as Parquet (zstd) and as fluentd-style
// gzip JSON lines, for records whose JSON log line was parsed into fields
// and for records that keep it as one string, and reports the file sizes
// and the bytes DuckDB reads for SELECT count(*) … WHERE container_name = ….
func BenchmarkLayoutBytesRead(b *testing.B) {
	db := tu.NewDuckDB(b)
	n := 1000000
	if s := os.Getenv("MARUTA_BENCH_RECORDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, raw := range []bool{false, true} {
		name := "parsed"
		if raw {
			name = "raw_log"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			g := sinktest.NewDockerGen(5, 20, time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC), raw)
			c := sinktest.WriteFileChunk(b, dir, delivery.ChunkInfo{ID: "x", Tag: "docker.shop"}, func(i int, _ int64) bool { return i < n },
				func(i int) (string, event.Time, []byte) { return g.Next(b, i) })
			_, out := sinktest.Output(b, dir, "  - type: file\n    name: lake\n")
			store, err := schema.Open(dir, out, nil)
			if err != nil {
				b.Fatal(err)
			}
			pe, err := NewParquet(&out.File.Encoding, store, dir, slog.Default())
			if err != nil {
				b.Fatal(err)
			}
			je := NewJSONL("time", "", "", true)
			pq := encodeToFile(b, pe, c, filepath.Join(dir, "x.parquet"))
			js := encodeToFile(b, je, c, filepath.Join(dir, "x.jsonl.gz"))
			readPQ := "read_parquet(" + tu.SQLString(filepath.Join(dir, "x.parquet")) + ")"
			readJS := "read_json(" + tu.SQLString(filepath.Join(dir, "x.jsonl.gz")) + ", format='newline_delimited')"
			where := "container_name = '/shop-api-3'"
			r1, pqRead := db.BytesRead(b, "SELECT count(*) FROM "+readPQ+" WHERE "+where)
			r2, jsRead := db.BytesRead(b, "SELECT count(*) FROM "+readJS+" WHERE "+where)
			if fmt.Sprint(r1.Rows) != fmt.Sprint(r2.Rows) {
				b.Fatalf("counts differ: parquet %v, jsonl %v", r1.Rows, r2.Rows)
			}
			where2 := "level = 'error'"
			if raw {
				where2 = `log LIKE '%"level":"error"%'`
			}
			r3, pqRead2 := db.BytesRead(b, "SELECT count(*) FROM "+readPQ+" WHERE "+where2)
			// A data column of one container: with rows sorted by
			// container, only its row groups are read.
			col := "latency_ms"
			if raw {
				col = "log"
			}
			_, pqRead3 := db.BytesRead(b, "SELECT max("+col+") FROM "+readPQ+" WHERE "+where)
			// What the container columns take in the file (compressed).
			colBytes := map[string]float64{}
			meta := db.Query(b, "SELECT path_in_schema AS col, sum(total_compressed_size) AS n, count(*) AS groups FROM parquet_metadata("+
				tu.SQLString(filepath.Join(dir, "x.parquet"))+") WHERE path_in_schema IN ('container_name', 'container_id') GROUP BY 1")
			for _, row := range meta.Maps() {
				n, _ := strconv.ParseFloat(fmt.Sprint(row["n"]), 64)
				colBytes[fmt.Sprint(row["col"])] = n
			}
			for b.Loop() { // nothing to time: the metrics are sizes
			}
			b.ReportMetric(float64(c.ChunkInfo.Bytes)/(1<<20), "msgpack_MB")
			b.ReportMetric(float64(pq)/(1<<20), "parquet_MB")
			b.ReportMetric(float64(js)/(1<<20), "jsonl_gz_MB")
			b.ReportMetric(float64(pqRead), "parquet_read_B")
			b.ReportMetric(float64(jsRead), "jsonl_gz_read_B")
			b.ReportMetric(float64(pqRead2), "parquet_level_read_B")
			b.ReportMetric(float64(pqRead3), "parquet_column_read_B")
			b.ReportMetric(colBytes["container_name"], "container_name_B")
			b.ReportMetric(colBytes["container_id"], "container_id_B")
			b.Logf("%d records; WHERE %s: %v rows; WHERE %s: %v rows", n, where, r1.Rows, where2, r3.Rows)
		})
	}
}

func encodeToFile(b *testing.B, enc Encoder, c delivery.Chunk, path string) int64 {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err := enc.Encode(context.Background(), c, bw, false); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	n, _ := f.Seek(0, io.SeekCurrent)
	return n
}

// BenchmarkJSONLEncodeGzip encodes 100k Docker-shaped records as gzip JSON
// lines (the fluentd-compatible format).
func BenchmarkJSONLEncodeGzip(b *testing.B) {
	const n = 100000
	c := benchChunk(b, n, true)
	b.ReportMetric(float64(encodeLoop(b, NewJSONL("time", "", "", true), c, n)), "file_bytes")
}
