package sinks

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
)

// benchChunk builds an in-memory chunk of n Docker-shaped records.
func benchChunk(b *testing.B, n int, raw bool) *memChunk {
	g := newDockerGen(7, 20, time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC), raw)
	c := &memChunk{info: ChunkInfo{ID: "bench", Output: "lake", Tag: "docker.shop", Slice: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)}}
	for i := 0; i < n; i++ {
		tag, tm, rec := g.next(b, i)
		c.events = append(c.events, testEvent{tag, tm, rec})
		c.info.Bytes += int64(len(rec))
	}
	c.info.Events = int64(n)
	return c
}

func benchParquet(b *testing.B, compression string, raw bool) {
	dir := b.TempDir()
	_, out := loadOutput(b, dir, "  - type: file\n    name: lake\n    compression: "+compression+"\n")
	store, err := openSchemaStore(dir, out, nil)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := newParquetEncoder(&out.File.Encoding, store, dir, slog.Default())
	if err != nil {
		b.Fatal(err)
	}
	const n = 100000
	c := benchChunk(b, n, raw)
	cw := &countWriter{}
	b.SetBytes(c.info.Bytes)
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		cw.n = 0
		if _, err := enc.encode(context.Background(), c, cw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	// Records per CPU second (user+sys of the process, GC included): what
	// one core does, even when other processes share the machine.
	b.ReportMetric(float64(n*b.N)/(cpuTime()-cpu0).Seconds(), "records/cpu-s")
	b.ReportMetric(float64(cw.n), "file_bytes")
	b.ReportMetric(float64(c.info.Bytes)/float64(cw.n), "ratio")
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

// BenchmarkParquetEncodeDockerRaw keeps the log line as one string.
func BenchmarkParquetEncodeDockerRaw(b *testing.B) { benchParquet(b, "zstd", true) }

func BenchmarkParquetEncodeDockerSnappy(b *testing.B) { benchParquet(b, "snappy", false) }
